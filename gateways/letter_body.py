"""A letter body's rich text, turned into reportlab flowables.

The body reaches us sanitised (p, br, b/strong, i/em, u, ul/ol/li), but reportlab's
paragraph markup is richer than that (<img src> reads files, <a>, <font>...): so the text is
parsed here and rebuilt from the allowed tags only; every other tag is printed as literal
text, escaped, so nothing in a body is ever interpreted by reportlab, and a stray tag shows
on the proof instead of silently eating words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from xml.sax.saxutils import escape

from reportlab.lib.styles import ParagraphStyle
from reportlab.platypus import Flowable, ListFlowable, ListItem, Paragraph

__all__ = ["BodyList", "BodyParagraph", "parse_body", "body_flowables"]

_INLINE = {"b": "b", "strong": "b", "i": "i", "em": "i", "u": "u"}


@dataclass(frozen=True)
class BodyParagraph:
    markup: str  # reportlab paragraph markup using only <b>, <i>, <u>, <br/>


@dataclass
class BodyList:
    ordered: bool
    items: list[list[Block]] = field(default_factory=list)


Block = BodyParagraph | BodyList


class _BodyParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root: list[Block] = []
        self._containers: list[list[Block]] = [self.root]  # where finished blocks go
        self._lists: list[tuple[BodyList, int]] = []  # open lists, with the container depth
        self._pieces: list[str] = []  # the open paragraph's markup
        self._inline: list[str] = []  # open inline tags (reportlab names)

    # -- paragraphs and inline tags --
    def _flush(self) -> None:
        """End the open paragraph; inline tags still open carry on into the next one."""
        text = "".join(self._pieces)
        self._pieces = [f"<{tag}>" for tag in self._inline]
        if not _has_words(text):
            return
        closing = "".join(f"</{tag}>" for tag in reversed(self._inline))
        self._containers[-1].append(BodyParagraph(text + closing))

    def _close_inline(self, tag: str) -> None:
        if tag not in self._inline:
            return  # an end tag nothing opened: ignored, as a browser would
        reopen: list[str] = []
        while self._inline:
            top = self._inline.pop()
            self._pieces.append(f"</{top}>")
            if top == tag:
                break
            reopen.append(top)
        for top in reversed(reopen):  # <b><i>x</b>y</i>: y stays italic
            self._inline.append(top)
            self._pieces.append(f"<{top}>")

    # -- lists --
    def _open_list(self, ordered: bool) -> None:
        self._flush()
        block = BodyList(ordered)
        self._containers[-1].append(block)
        self._lists.append((block, len(self._containers)))

    def _open_item(self) -> None:
        self._flush()
        if not self._lists:  # an <li> outside any list: give it one
            self._open_list(ordered=False)
        block, depth = self._lists[-1]
        del self._containers[depth:]  # closes the previous item when </li> was left out
        block.items.append([])
        self._containers.append(block.items[-1])

    def _close_list(self) -> None:
        self._flush()
        if self._lists:
            _, depth = self._lists.pop()
            del self._containers[depth:]

    # -- HTMLParser callbacks --
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _INLINE:
            self._inline.append(_INLINE[tag])
            self._pieces.append(f"<{_INLINE[tag]}>")
        elif tag == "br":
            self._pieces.append("<br/>")
        elif tag == "p":
            self._flush()
        elif tag in ("ul", "ol"):
            self._open_list(ordered=tag == "ol")
        elif tag == "li":
            self._open_item()
        else:
            self._pieces.append(escape(self.get_starttag_text() or f"<{tag}>"))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self._pieces.append("<br/>")
        elif tag not in _INLINE and tag not in ("p", "ul", "ol", "li"):
            self._pieces.append(escape(self.get_starttag_text() or f"<{tag}/>"))

    def handle_endtag(self, tag: str) -> None:
        if tag in _INLINE:
            self._close_inline(_INLINE[tag])
        elif tag == "p":
            self._flush()
        elif tag == "li":
            self._flush()
            if self._lists:
                del self._containers[self._lists[-1][1]:]
        elif tag in ("ul", "ol"):
            self._close_list()
        elif tag != "br":
            self._pieces.append(escape(f"</{tag}>"))

    def handle_data(self, data: str) -> None:
        self._pieces.append(escape(data))

    def close(self) -> None:
        super().close()
        self._flush()


def _has_words(markup: str) -> bool:
    bare = markup
    for tag in ("<b>", "</b>", "<i>", "</i>", "<u>", "</u>", "<br/>"):
        bare = bare.replace(tag, "")
    return bool(bare.strip())


def parse_body(body_html: str) -> list[Block]:
    """The body as paragraphs and (nested) lists of safe markup."""
    parser = _BodyParser()
    parser.feed(body_html)
    parser.close()
    return parser.root


def body_flowables(blocks: list[Block], style: ParagraphStyle) -> list[Flowable]:
    """Fresh flowables for one letter (reportlab consumes and splits them as it lays out
    a page, so each letter needs its own)."""
    out: list[Flowable] = []
    for block in blocks:
        if isinstance(block, BodyParagraph):
            out.append(Paragraph(block.markup, style))
        else:
            tight = ParagraphStyle(f"{style.name}-item", parent=style, spaceAfter=3)
            items = [ListItem(body_flowables(item, tight) or [Paragraph("", tight)])
                     for item in block.items]
            if items:
                out.append(ListFlowable(items, bulletType="1" if block.ordered else "bullet",
                                        start=None if block.ordered else "\u2022",
                                        bulletFontName=style.fontName,
                                        bulletFontSize=style.fontSize,
                                        leftIndent=18, spaceAfter=style.spaceAfter))
    return out
