"""An email body's HTML: made safe (nh3, an allow-list) and spelled out as plain text.

Staff paste bodies from Microsoft Word, so the sanitiser first unpicks what Word adds: the
`<o:p>` placeholders, the bullets it draws inside `<![if !supportLists]>` blocks, and its list
paragraphs (`class=MsoListParagraph…`), which become real lists so that mail readers and the
plain-text alternative show them as lists. Everything else (styles, classes, conditional
comments, `<xml>` blocks, scripts, event handlers, non-web links) is the allow-list's job.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import nh3

TAGS = {
    "p", "br", "b", "strong", "i", "em", "u", "ul", "ol", "li", "a",
    "h1", "h2", "h3", "h4", "span", "div", "blockquote", "hr",
    "table", "thead", "tbody", "tr", "th", "td", "caption",
}
ATTRIBUTES = {"a": {"href", "title"}, "td": {"colspan", "rowspan"},
              "th": {"colspan", "rowspan", "scope"}}
URL_SCHEMES = {"http", "https", "mailto"}
# Removed with everything inside them: their text must never leak into the body as words.
CONTENT_DROPPED = {"script", "style", "xml", "title", "head", "template", "noscript",
                   "iframe", "object", "embed", "svg", "math", "textarea", "select"}

_WORD_PLACEHOLDER = re.compile(r"<o:p\b[^>]*>.*?</o:p>", re.IGNORECASE | re.DOTALL)
# The bullet or number Word draws for a list item (already-rendered text, not a list).
_WORD_LIST_MARKER = re.compile(r"<!\[if\s+!supportLists\]>(.*?)<!\[endif\]>",
                               re.IGNORECASE | re.DOTALL)
_WORD_LIST_PARAGRAPH = re.compile(
    r"<p\b[^>]*class=[\"']?MsoListParagraph\w*[\"']?[^>]*>(.*?)</p>",
    re.IGNORECASE | re.DOTALL)
_LIST_RUN = re.compile(r"(?:<outreach-li kind=(ul|ol)>.*?</outreach-li>\s*)+", re.DOTALL)
_ORDERED_MARKER = re.compile(r"(?:\d+|[a-zA-Z]|[ivxIVX]+)[.)]")
_TAG = re.compile(r"<[^>]+>")


def _word_lists(html: str) -> str:
    """Word's list paragraphs → <ul>/<ol><li>; its drawn bullets are dropped."""

    def item(match: re.Match[str]) -> str:
        inner = match.group(1)
        marker = _WORD_LIST_MARKER.search(inner)
        drawn = _TAG.sub("", marker.group(1)) if marker else ""
        kind = "ol" if _ORDERED_MARKER.search(drawn) else "ul"
        return f"<outreach-li kind={kind}>{_WORD_LIST_MARKER.sub('', inner)}</outreach-li>"

    def run(match: re.Match[str]) -> str:
        kind = match.group(1)
        items = re.sub(r"<outreach-li kind=\w+>(.*?)</outreach-li>\s*", r"<li>\1</li>",
                       match.group(0), flags=re.DOTALL)
        return f"<{kind}>{items}</{kind}>"

    marked = _WORD_LIST_PARAGRAPH.sub(item, html)
    return _LIST_RUN.sub(run, marked)


def sanitise_html(html: str) -> str:
    """Safe email-body HTML: allow-listed tags, http/https/mailto links only."""
    html = _WORD_PLACEHOLDER.sub("", html)
    html = _word_lists(html)
    html = _WORD_LIST_MARKER.sub("", html)  # a stray marker outside a list paragraph
    cleaned = nh3.clean(
        html, tags=TAGS, clean_content_tags=CONTENT_DROPPED, attributes=ATTRIBUTES,
        url_schemes=URL_SCHEMES, url_relative="deny", strip_comments=True,
        link_rel="noopener noreferrer")
    # Word leaves blank lines and empty paragraphs between its paragraphs: keep it compact.
    cleaned = re.sub(r"<p>(?:\s|&nbsp;|\xa0)*</p>", "", cleaned)
    return re.sub(r"\n\s*\n+", "\n", cleaned).strip()


# -- the plain-text alternative ----------------------------------------------------------

_BLOCKS = {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "ul", "ol",
           "table", "tr", "header", "footer", "section", "article", "hr"}
_SKIPPED = {"script", "style", "head", "title", "template", "noscript", "xml"}


class _TextWriter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.links: list[tuple[str, int]] = []  # (href, where its text starts in parts)
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self.skipping += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in ("td", "th"):
            self.parts.append(" ")
        elif tag in _BLOCKS:
            self.parts.append("\n\n")
            if tag == "hr":
                self.parts.append("----\n\n")
        elif tag == "a":
            self.links.append((dict(attrs).get("href") or "", len(self.parts)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag in _SKIPPED:  # <title/> opens nothing
            self.skipping -= 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n\n")
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            words = " ".join("".join(self.parts[start:]).split())
            if href and href not in (words, f"mailto:{words}"):
                self.parts.append(f" ({href})" if words else href)

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            # Newlines in HTML source are spaces; \s also takes the no-break space.
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """Readable plain text: paragraphs apart, list items as "- item", links spelled out."""
    writer = _TextWriter()
    writer.feed(html)
    writer.close()
    lines = [" ".join(line.split()) for line in "".join(writer.parts).split("\n")]
    # Blank runs shrink to one blank line: the gap between paragraphs.
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
