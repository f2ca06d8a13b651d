"""Address labels on the standard 30-up sheet (Avery 5160 geometry), and the text fitting
the letters' window address block shares with them.

Labels run left to right, then top to bottom, in the order of the letters, so the stack of
folded letters and the sheet of labels match one for one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reportlab.lib.pagesizes import LETTER
from reportlab.lib.units import inch
from reportlab.pdfbase.pdfmetrics import getAscentDescent, stringWidth
from reportlab.pdfgen.canvas import Canvas

from gateways.letters import LetterRecipient

__all__ = ["AVERY_5160", "LabelSheet", "FittedLines", "fit_lines", "draw_lines", "write_labels"]

FONT = "Helvetica"
LEADING = 1.15  # line pitch as a multiple of the font size
ELLIPSIS = "\u2026"  # in WinAnsi, so Helvetica prints it


@dataclass(frozen=True)
class LabelSheet:
    """A sheet of equal labels; positions in points from the page's bottom-left corner."""

    columns: int
    rows: int
    width: float
    height: float
    top_margin: float
    left_margin: float
    pitch_x: float
    pitch_y: float
    padding_x: float
    padding_y: float
    page: tuple[float, float] = LETTER

    @property
    def per_sheet(self) -> int:
        return self.columns * self.rows

    def cell(self, index: int) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) of the index-th label on its sheet, row-major."""
        row, col = divmod(index % self.per_sheet, self.columns)
        left = self.left_margin + col * self.pitch_x
        top = self.page[1] - self.top_margin - row * self.pitch_y
        return left, top - self.height, left + self.width, top


AVERY_5160 = LabelSheet(columns=3, rows=10, width=2.625 * inch, height=1.0 * inch,
                        top_margin=0.5 * inch, left_margin=0.1875 * inch,
                        pitch_x=2.75 * inch, pitch_y=1.0 * inch,
                        padding_x=0.15 * inch, padding_y=0.08 * inch)


@dataclass(frozen=True)
class FittedLines:
    lines: tuple[str, ...]
    size: float

    def height(self) -> float:
        ascent, descent = getAscentDescent(FONT, self.size)
        return ascent - descent + (len(self.lines) - 1) * self.size * LEADING


def _truncate(text: str, size: float, width: float) -> str:
    if stringWidth(text, FONT, size) <= width:
        return text
    while text and stringWidth(text + ELLIPSIS, FONT, size) > width:
        text = text[:-1]
    return text.rstrip() + ELLIPSIS


def fit_lines(lines: Sequence[str], width: float, height: float, *,
              size: float = 10.0, min_size: float = 6.5) -> FittedLines:
    """The largest font size (from `size` down to `min_size`) at which every line fits the
    box; below that, lines are cut with an ellipsis and, when there are too many, the
    middle ones dropped (the name on top and the city/state/ZIP line at the bottom are what
    the mail needs most). Never more than fits."""
    wanted = tuple(" ".join(line.split()) for line in lines if line and line.strip())
    current = size
    while True:
        fitted = FittedLines(wanted, current)
        if (fitted.height() <= height
                and all(stringWidth(line, FONT, current) <= width for line in wanted)):
            return fitted
        if current - 0.5 < min_size:
            break
        current -= 0.5
    kept = list(wanted)
    while len(kept) > 1 and FittedLines(tuple(kept), min_size).height() > height:
        del kept[-2]  # keep the first (name) and last (city, state, ZIP)
    return FittedLines(tuple(_truncate(line, min_size, width) for line in kept), min_size)


def draw_lines(canvas: Canvas, fitted: FittedLines, left: float, top: float) -> None:
    """Draw fitted lines with the first line's ascent touching `top`."""
    ascent, _ = getAscentDescent(FONT, fitted.size)
    canvas.setFont(FONT, fitted.size)
    baseline = top - ascent
    for line in fitted.lines:
        canvas.drawString(left, baseline, line)
        baseline -= fitted.size * LEADING


def label_lines(recipient: LetterRecipient) -> tuple[str, ...]:
    return (recipient.name, *recipient.address_lines)


def write_labels(path: Path, recipients: Sequence[LetterRecipient], *, title: str,
                 sheet: LabelSheet = AVERY_5160) -> int:
    """Write the labels of `recipients` to `path`; returns the number of sheets."""
    canvas = Canvas(str(path), pagesize=sheet.page, invariant=True, pageCompression=1)
    canvas.setTitle(title)
    sheets = 0
    for index, recipient in enumerate(recipients):
        if index % sheet.per_sheet == 0:
            if index:
                canvas.showPage()
            sheets += 1
        left, bottom, right, top = sheet.cell(index)
        box_w = right - left - 2 * sheet.padding_x
        box_h = top - bottom - 2 * sheet.padding_y
        fitted = fit_lines(label_lines(recipient), box_w, box_h)
        # centred vertically in the label, as label software prints them
        text_top = top - sheet.padding_y - (box_h - fitted.height()) / 2
        draw_lines(canvas, fitted, left + sheet.padding_x, text_top)
    if sheets:
        canvas.showPage()
    canvas.save()
    return sheets
