"""The template library shipped with the product (application/templates/*.json).

Staff choose a template by name when they create a campaign. Editable ones ("Ad hoc email")
start empty or as a draft; prepopulated ones (the guide's email examples) keep their subject
and body as written: staff pick them, they do not reword them. Subjects never name a
condition or test: a subject shows on a locked phone's screen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Literal

from domain.errors import NotFound

LogoChoice = Literal["none", "optional", "required"]


@dataclass(frozen=True)
class Template:
    name: str
    channel: str  # a domain.channels.Channel value: "email", "text", …
    subject: str
    body: str  # email: sanitised HTML with merge fields; text: plain text
    editable: bool
    description: str
    logo: LogoChoice = "none"  # email: whether the layout shows the clinic's logo


@cache
def _library() -> tuple[Template, ...]:
    folder = files("application").joinpath("templates")
    found = sorted((p for p in folder.iterdir() if p.name.endswith(".json")),
                   key=lambda p: p.name)  # file names carry the listing order
    return tuple(Template(**json.loads(p.read_text(encoding="utf-8"))) for p in found)


def templates(channel: str | None = None) -> list[Template]:
    """The library, in its listing order; only one channel's when channel is given."""
    wanted = None if channel is None else channel.strip().lower()
    return [t for t in _library() if wanted is None or t.channel == wanted]


def template(name: str) -> Template:
    """The template of that name, any letter case; NotFound lists the names there are."""
    key = " ".join(name.split()).casefold()
    for t in _library():
        if t.name.casefold() == key:
            return t
    names = ", ".join(t.name for t in _library())
    raise NotFound(f"no template named {name.strip()!r}; the templates are: {names}")
