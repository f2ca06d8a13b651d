"""Printed letters as PDF files (reportlab), with their address-label files.

Every letter starts on a new page: the letterhead (logo, organisation, return address), the
mail date, the patient's address where the envelope window shows it, "Dear <first name>,"
when the campaign says so, then the body. A body too long for the first page goes on to
continuation pages (headed with the patient's name and the page number) and the next
letter still starts on a new page; a normal body (about 350 words) fits on one page, so
then pages = letters.

Files are written under a hidden temporary name and renamed into place, so a listing of
the folder never shows a half-written file.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from io import BytesIO
from pathlib import Path
from typing import TypeVar

from reportlab.lib.pagesizes import A4, LETTER
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import inch, mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, Frame, Paragraph

from domain.errors import InvalidContent
from gateways.letter_body import Block, body_flowables, parse_body
from gateways.letters import (
    LETTERS_PER_FILE,
    LetterContent,
    LetterFile,
    LetterPrinter,
    LetterRecipient,
    Progress,
    file_batches,
)
from gateways.pdf_labels import FONT, draw_lines, fit_lines, write_labels

__all__ = ["PdfLetterPrinter", "render_letters", "mail_date_text"]

BOLD = "Helvetica-Bold"
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")


@dataclass(frozen=True)
class PageLayout:
    """Where things go on a page; lengths in points, `*_top` measured down from the top."""

    size: tuple[float, float]
    left: float
    right: float  # margin
    top: float  # margin
    bottom: float  # margin
    logo_w: float
    logo_h: float
    date_top: float
    window_left: float  # the recipient's address block, where the envelope window is
    window_top: float
    window_w: float
    window_h: float
    body_top: float  # first page
    next_top: float  # continuation pages


# US Letter folded in three into a #10 window envelope (window 4.5 x 1.125 in, 7/8 in from
# the left, 1/2 in from the bottom): the address block sits 2 1/8 - 3 in from the top and
# 1 in from the left, inside the window whatever the letter's play in the envelope.
LETTER_LAYOUT = PageLayout(size=LETTER, left=1 * inch, right=1 * inch, top=0.5 * inch,
                           bottom=0.75 * inch, logo_w=2.5 * inch, logo_h=0.75 * inch,
                           date_top=1.75 * inch, window_left=1 * inch, window_top=2.125 * inch,
                           window_w=3.5 * inch, window_h=0.875 * inch, body_top=3.4 * inch,
                           next_top=1.0 * inch)
# A4 for a DL window envelope: the address field of DIN 5008 form B (45-90 mm from the top,
# 20 mm from the left; we print from 50 mm, 25 mm in), the body below the 105 mm fold mark.
A4_LAYOUT = PageLayout(size=A4, left=25 * mm, right=20 * mm, top=12 * mm, bottom=20 * mm,
                       logo_w=65 * mm, logo_h=20 * mm, date_top=45 * mm, window_left=25 * mm,
                       window_top=50 * mm, window_w=80 * mm, window_h=38 * mm,
                       body_top=105 * mm, next_top=25 * mm)
LAYOUTS = {"Letter": LETTER_LAYOUT, "A4": A4_LAYOUT}

BODY_STYLE = ParagraphStyle("body", fontName=FONT, fontSize=11, leading=14.5, spaceAfter=8)
_LOGO_FORM = "letterhead-logo"
_BODY_FORM = "letter-body"
T = TypeVar("T")


def mail_date_text(day: date) -> str:
    """"December 7, 2026" (no locale: a letter reads the same on every server)."""
    return f"{_MONTHS[day.month - 1]} {day.day}, {day.year}"


def _logo(logo: bytes | None) -> ImageReader | None:
    if logo is None:
        return None
    if not (logo.startswith(b"\x89PNG\r\n\x1a\n") or logo.startswith(b"\xff\xd8\xff")):
        raise InvalidContent("The letterhead logo must be a PNG or JPEG image.")
    try:
        reader = ImageReader(BytesIO(logo))
        width, height = reader.getSize()
    except Exception as exc:  # a broken image: reportlab/Pillow raise many kinds
        raise InvalidContent("The letterhead logo image cannot be read.") from exc
    if width <= 0 or height <= 0:
        raise InvalidContent("The letterhead logo image is empty.")
    return reader


class _LetterWriter:
    """Draws letters onto one canvas (one file)."""

    def __init__(self, canvas: Canvas, content: LetterContent, blocks: list[Block]) -> None:
        self.c = canvas
        self.content = content
        self.layout = LAYOUTS[content.page_size]
        self.blocks = blocks
        self.date = mail_date_text(content.mail_date)
        self.has_logo = self._define_logo(_logo(content.logo))
        self.greeting_slot = BODY_STYLE.leading + BODY_STYLE.spaceAfter if content.greeting else 0
        self.has_body_form = self._define_body()
        self.pages = 0

    def _define_logo(self, reader: ImageReader | None) -> bool:
        """The logo goes in once per file, as a form every page reuses (not a copy per
        page: 200 copies of a logo would make the file 200 times its size)."""
        if reader is None:
            return False
        lay = self.layout
        width, height = reader.getSize()
        scale = min(lay.logo_w / width, lay.logo_h / height)
        w, h = width * scale, height * scale
        self.c.beginForm(_LOGO_FORM)
        self.c.drawImage(reader, lay.left, lay.size[1] - lay.top - h, w, h, mask="auto")
        self.c.endForm()
        return True

    def _define_body(self) -> bool:
        """A body that fits on the first page under a one-line greeting is laid out once,
        as a form every letter of the file reuses: the same words, a fraction of the time
        and bytes. A longer body is laid out per letter (it runs on to more pages)."""
        top = self.layout.body_top + self.greeting_slot
        story = body_flowables(self.blocks, BODY_STYLE)
        _fill(self._frame(top), story, Canvas(BytesIO(), pagesize=self.layout.size))
        if story:
            return False
        story = body_flowables(self.blocks, BODY_STYLE)
        self.c.beginForm(_BODY_FORM)
        _fill(self._frame(top), story, self.c)
        self.c.endForm()
        return True

    def _y(self, from_top: float) -> float:
        return self.layout.size[1] - from_top

    def _letterhead(self) -> None:
        lay, c = self.layout, self.c
        if self.has_logo:
            c.doForm(_LOGO_FORM)
        x = lay.size[0] - lay.right
        c.setFont(BOLD, 10)
        c.drawRightString(x, self._y(lay.top + 10), self.content.organisation)
        c.setFont(FONT, 9)
        for n, line in enumerate(self.content.return_address[:5]):
            c.drawRightString(x, self._y(lay.top + 22 + n * 11), line)
        c.setFont(FONT, 10.5)
        c.drawRightString(x, self._y(lay.date_top), self.date)

    def _address(self, recipient: LetterRecipient) -> None:
        lay = self.layout
        fitted = fit_lines((recipient.name, *recipient.address_lines),
                           lay.window_w, lay.window_h, size=10.5, min_size=7)
        draw_lines(self.c, fitted, lay.window_left, self._y(lay.window_top))

    def _continuation(self, recipient: LetterRecipient, page: int) -> None:
        lay = self.layout
        self.c.setFont(FONT, 9)
        self.c.drawString(lay.left, self._y(lay.top + 9),
                          f"{recipient.name} \u2014 {self.date} \u2014 page {page}")

    def _frame(self, top: float) -> Frame:
        lay = self.layout
        width = lay.size[0] - lay.left - lay.right
        return Frame(lay.left, lay.bottom, width, lay.size[1] - top - lay.bottom,
                     leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0)

    def letter(self, recipient: LetterRecipient) -> None:
        """One letter, from a new page; as many pages as its body needs."""
        story: list[Flowable] = []
        if self.content.greeting:
            story.append(Paragraph(f"Dear {_escape(recipient.first_name)},", BODY_STYLE))
        self._letterhead()
        self._address(recipient)
        frame = self._frame(self.layout.body_top)
        if self.has_body_form and _one_line(story, frame):
            _fill(frame, story, self.c)
            self.c.doForm(_BODY_FORM)
            self.c.showPage()
            self.pages += 1
            return
        story += body_flowables(self.blocks, BODY_STYLE)
        page = 1
        _fill(frame, story, self.c)
        while story:
            self.c.showPage()
            self.pages += 1
            page += 1
            self._continuation(recipient, page)
            _fill(self._frame(self.layout.next_top), story, self.c)
        self.c.showPage()
        self.pages += 1


def _one_line(story: list[Flowable], frame: Frame) -> bool:
    """True when the greeting (if any) takes the one line the body form leaves for it."""
    return all(f.wrap(frame._aW, frame._aH)[1] <= BODY_STYLE.leading for f in story)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fill(frame: Frame, story: list[Flowable], canvas: Canvas) -> None:
    """Lay flowables into the frame until it is full, splitting the one that straddles
    the bottom (Frame.addFromList does not split)."""
    while story:
        head = story[0]
        if frame.add(head, canvas, trySplit=0):
            del story[0]
            continue
        parts = frame.split(head, canvas)
        if parts and parts[0] is not head:
            story[0:1] = parts
            if frame.add(story[0], canvas, trySplit=0):
                del story[0]
                continue
        if frame._atTop:  # cannot fit even on an empty page: it never will
            raise InvalidContent("Part of the letter body is too large to fit on a page.")
        return


def _atomic_write(path: Path, write: Callable[[Path], T]) -> tuple[T, int]:
    """Run write(temporary path), then rename the file into place: (its result, bytes)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    try:
        result = write(tmp)
        size = tmp.stat().st_size
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return result, size


def _write_letters(path: Path, content: LetterContent, blocks: list[Block],
                   group: Sequence[LetterRecipient], on_letter: Callable[[], None]) -> int:
    """One letters file; returns its page count."""
    canvas = Canvas(str(path), pagesize=LAYOUTS[content.page_size].size, invariant=True,
                    pageCompression=1)
    canvas.setTitle(f"{content.organisation} letters")  # no patient in the metadata
    canvas.setAuthor(content.organisation)
    writer = _LetterWriter(canvas, content, blocks)
    for recipient in group:
        writer.letter(recipient)
        on_letter()
    canvas.save()
    return writer.pages


def render_letters(content: LetterContent, recipients: Sequence[LetterRecipient],
                   folder: Path, *, base_name: str, per_file: int = LETTERS_PER_FILE,
                   progress: Progress | None = None) -> list[LetterFile]:
    """Write f"{base_name}-letters-NN.pdf" and f"{base_name}-labels-NN.pdf" (NN from 01)
    into `folder`, at most `per_file` letters (and their labels) per file, and list them
    in the order letters-01, labels-01, letters-02, ... `progress(done, total)` is called
    after each letter. Nothing is written for no recipients. Raises InvalidContent for a
    logo that is not a readable PNG/JPEG or a body part larger than a page."""
    if content.page_size not in LAYOUTS:
        raise InvalidContent("The letter page size must be Letter or A4.")
    blocks = parse_body(content.body_html)
    _logo(content.logo)  # refuse a bad logo before writing anything
    folder.mkdir(parents=True, exist_ok=True)
    total = len(recipients)
    done = 0

    def one_done() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    files: list[LetterFile] = []
    for number, batch in enumerate(file_batches(total, per_file), start=1):
        group = [recipients[i] for i in batch]
        path = folder / f"{base_name}-letters-{number:02d}.pdf"
        pages, size = _atomic_write(path, partial(_write_letters, content=content,
                                                  blocks=blocks, group=group,
                                                  on_letter=one_done))
        files.append(LetterFile(path, "letters", batch.start, len(group), pages, size))
        path = folder / f"{base_name}-labels-{number:02d}.pdf"
        sheets, size = _atomic_write(path, partial(write_labels, recipients=group,
                                                   title=f"{content.organisation} labels"))
        files.append(LetterFile(path, "labels", batch.start, len(group), sheets, size))
    return files


class PdfLetterPrinter(LetterPrinter):
    """The LetterPrinter port over render_letters."""

    def render(self, content: LetterContent, recipients: Sequence[LetterRecipient],
               folder: Path, *, base_name: str, per_file: int = LETTERS_PER_FILE,
               progress: Progress | None = None) -> list[LetterFile]:
        return render_letters(content, recipients, folder, base_name=base_name,
                              per_file=per_file, progress=progress)
