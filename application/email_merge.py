"""Merge fields: staff write `{{ first_name }}` in a subject or body; each patient's value
goes in at send time.

Staff templates are data, not code: only plain `{{ field }}` outputs of the known fields are
accepted (no statements, filters, attribute access or calls), checked when the campaign is
created so that a typo is a clear error then, never a failed send later. Rendering runs in
jinja2's sandbox with StrictUndefined all the same, and HTML bodies escape every value.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.environment import Template as JinjaTemplate
from jinja2.runtime import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from domain.errors import InvalidContent

MERGE_FIELDS: dict[str, str] = {
    "first_name": "the patient's first name",
    "last_name": "the patient's last name",
    "provider": "the patient's provider (PCP) name",
    "help_number": "the clinic's help number",
    "organisation": "the organisation's name",
}
_KNOWN = ", ".join(MERGE_FIELDS)
# The only nodes a plain `text {{ field }} text` template parses into.
_ALLOWED_NODES = (nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name)

_ENVIRONMENTS = {
    html: SandboxedEnvironment(undefined=StrictUndefined, autoescape=html,
                               keep_trailing_newline=True)
    for html in (True, False)
}


def _kind_of(node: nodes.Node) -> str:
    if isinstance(node, nodes.Stmt):
        return "a {% %} statement"
    if isinstance(node, nodes.Filter):
        return "a filter ( | )"
    if isinstance(node, nodes.Getattr | nodes.Getitem):
        return "an attribute or item lookup"
    if isinstance(node, nodes.Call):
        return "a call"
    return "an expression"


def check_merge_fields(text: str, where: str) -> None:
    """Refuse unknown fields and anything but plain `{{ field }}` (InvalidContent, one line)."""
    env = _ENVIRONMENTS[False]
    try:
        tree = env.parse(text)
    except TemplateSyntaxError as exc:
        reason = " ".join(str(exc.message or "unreadable").split())
        raise InvalidContent(f"a merge field in the {where} cannot be read (line "
                             f"{exc.lineno}: {reason}); write fields as {{{{ first_name }}}}"
                             ) from None
    for node in tree.find_all(nodes.Node):
        if not isinstance(node, _ALLOWED_NODES):
            raise InvalidContent(f"only plain merge fields such as {{{{ first_name }}}} may "
                                 f"be used in the {where}, not {_kind_of(node)} (line "
                                 f"{node.lineno}); use: {_KNOWN}")
    unknown = sorted(meta.find_undeclared_variables(tree) - MERGE_FIELDS.keys())
    if unknown:
        named = ", ".join(f"{{{{ {name} }}}}" for name in unknown)
        noun = "field" if len(unknown) == 1 else "fields"
        raise InvalidContent(f"unknown merge {noun} {named} in the {where}; use: {_KNOWN}")


@lru_cache(maxsize=256)
def _compiled(text: str, html: bool) -> JinjaTemplate:
    check_merge_fields(text, "message")  # stored content is checked again: cheap, and safe
    return _ENVIRONMENTS[html].from_string(text)


def render(text: str, values: Mapping[str, str], *, html: bool) -> str:
    """The text with each merge field replaced; values are HTML-escaped when html is true."""
    return _compiled(text, html).render(**{k: values[k] for k in MERGE_FIELDS if k in values})
