"""Printed letters: the PDFs opened back with pypdf — one patient per page, greeting,
address and mail date on the right page, the 200-per-file split, page sizes, the logo, the
rich-text body, and the address labels inside their Avery 5160 cells."""

from __future__ import annotations

import math
import re
from datetime import date
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pypdf import PdfReader
from reportlab.lib.units import inch
from reportlab.pdfbase.pdfmetrics import stringWidth

from domain.errors import InvalidContent
from gateways.letters import (
    LetterContent,
    LetterRecipient,
    address_problem,
    file_batches,
    usable_address,
)
from gateways.pdf_labels import AVERY_5160, fit_lines
from gateways.pdf_letters import (
    PdfLetterPrinter,
    _atomic_write,
    mail_date_text,
    render_letters,
)

BODY = ("<p>Our records show you are due for your <b>annual check-up</b>.</p>"
        "<p>Please call <i>(555) 010-0100</i> to book a visit.</p>")


def content(**changes: Any) -> LetterContent:
    values: dict[str, Any] = dict(
        page_size="Letter", greeting=True, body_html=BODY, logo=None,
        return_address=("Total Healthcare", "100 Main Street", "Springfield, IL 62704"),
        mail_date=date(2026, 12, 7), organisation="Total Healthcare")
    values.update(changes)
    return LetterContent(**values)


def patients(n: int) -> list[LetterRecipient]:
    # Names that never contain one another ("Pat1" is inside "Pat10"): Pat-0001-
    return [LetterRecipient(f"p{i}", f"Pat{i:04d}x", f"Lee{i:04d}x",
                            (f"{i + 1} Oak Avenue", "Apt 2", "Springfield, IL 62704-1234"))
            for i in range(n)]


def png(width: int = 24, height: int = 8) -> bytes:
    buf = BytesIO()  # Pillow: reportlab's own dependency for reading images
    Image.new("RGB", (width, height), (10, 80, 160)).save(buf, "PNG")
    return buf.getvalue()


def page_texts(path: Path) -> list[str]:
    return [page.extract_text() for page in PdfReader(path).pages]


def names_on(text: str) -> set[str]:
    return set(re.findall(r"Pat\d{4}x Lee\d{4}x", text))


# -- one patient per page ------------------------------------------------------------------


def test_each_page_is_one_patients_letter_with_greeting_address_and_mail_date(
        tmp_path: Path) -> None:
    people = patients(7)
    files = render_letters(content(), people, tmp_path, base_name="flu")
    letters = [f for f in files if f.kind == "letters"]
    assert len(letters) == 1 and letters[0].pages == 7
    texts = page_texts(letters[0].path)
    assert len(texts) == 7  # page count = letters for a normal body
    for person, text in zip(people, texts, strict=True):
        assert names_on(text) == {person.name}
        assert f"Dear {person.first_name}," in text
        assert text.count("Dear ") == 1
        for line in person.address_lines:
            assert line in text
        assert "December 7, 2026" in text
        assert "annual check-up" in text


def test_no_greeting_when_it_is_off(tmp_path: Path) -> None:
    files = render_letters(content(greeting=False), patients(3), tmp_path, base_name="x")
    for text in page_texts(files[0].path):
        assert "Dear" not in text
        assert "annual check-up" in text


def test_a_long_body_runs_on_but_the_next_letter_starts_on_a_new_page(tmp_path: Path) -> None:
    long_body = "".join(f"<p>Paragraph {n}: " + "please read this carefully. " * 30 + "</p>"
                        for n in range(12))
    people = patients(2)
    [letters, _] = render_letters(content(body_html=long_body), people, tmp_path,
                                  base_name="long")
    texts = page_texts(letters.path)
    assert letters.pages == len(texts) > 2
    first_pages = [i for i, text in enumerate(texts) if "Dear " in text]
    assert len(first_pages) == 2
    second = first_pages[1]
    assert all(names_on(t) == {people[0].name} for t in texts[:second])
    assert all(names_on(t) == {people[1].name} for t in texts[second:])
    assert "Paragraph 11" in texts[second - 1] and "Paragraph 11" in texts[-1]


def test_a_greeting_too_long_for_one_line_pushes_the_body_down(tmp_path: Path) -> None:
    long_first = "Maximiliana Josephina Theodora Alexandrina Wilhelmina " * 2 + "Pat0001x"
    people = [*patients(1), LetterRecipient("p1", long_first, "Lee0001x", ("1 Elm St",
                                                                             "Salem, OR 97301"))]
    [letters, _] = render_letters(content(), people, tmp_path, base_name="g")
    runs = text_runs(letters.path)[1]
    greeting_bottom = min(y for _, y, text, _, _ in runs if "Maximiliana" in text
                          or "Pat0001x," in text)
    body_top = max(y for _, y, text, _, _ in runs if "Our records" in text)
    # a full line below the wrapped greeting's last line, not printed over it
    assert greeting_bottom - body_top >= 14
    assert letters.pages == 2


def test_mail_date_is_written_in_words() -> None:
    assert mail_date_text(date(2026, 12, 7)) == "December 7, 2026"
    assert mail_date_text(date(2027, 1, 31)) == "January 31, 2027"


# -- files of at most 200 ------------------------------------------------------------------


def test_450_letters_make_three_letter_files_and_three_label_files(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    files = PdfLetterPrinter().render(content(), patients(450), tmp_path, base_name="flu",
                                      progress=lambda done, total: seen.append((done, total)))
    assert [(f.path.name, f.kind, f.first, f.count) for f in files] == [
        ("flu-letters-01.pdf", "letters", 0, 200), ("flu-labels-01.pdf", "labels", 0, 200),
        ("flu-letters-02.pdf", "letters", 200, 200), ("flu-labels-02.pdf", "labels", 200, 200),
        ("flu-letters-03.pdf", "letters", 400, 50), ("flu-labels-03.pdf", "labels", 400, 50)]
    for f in files:
        reader = PdfReader(f.path)
        assert f.pages == len(reader.pages)
        assert f.bytes == f.path.stat().st_size
        if f.kind == "letters":
            assert f.pages == f.count
        else:
            assert f.pages == math.ceil(f.count / 30)
    assert names_on(PdfReader(files[4].path).pages[0].extract_text()) == {"Pat0400x Lee0400x"}
    assert seen[-1] == (450, 450) and len(seen) == 450
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.path.name for f in files)


@given(count=st.integers(0, 1000), per_file=st.integers(1, 250))
def test_files_split_letters_ceil_wise_and_cover_every_letter(count: int, per_file: int) -> None:
    batches = file_batches(count, per_file)
    assert len(batches) == math.ceil(count / per_file)
    assert sum(len(b) for b in batches) == count
    assert all(1 <= len(b) <= per_file for b in batches)
    assert all(len(b) == per_file for b in batches[:-1])
    assert [i for b in batches for i in b] == list(range(count))


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(count=st.integers(0, 14), per_file=st.integers(1, 5))
def test_rendered_files_follow_the_split(tmp_path: Path, count: int, per_file: int) -> None:
    folder = tmp_path / f"{count}-{per_file}"
    files = render_letters(content(), patients(count), folder, base_name="p",
                           per_file=per_file)
    letters = [f for f in files if f.kind == "letters"]
    assert [(f.first, f.count) for f in letters] == [
        (b.start, len(b)) for b in file_batches(count, per_file)]
    assert sum(len(PdfReader(f.path).pages) for f in letters) == count


def test_no_recipients_write_no_files(tmp_path: Path) -> None:
    assert render_letters(content(), [], tmp_path, base_name="none") == []
    assert list(tmp_path.iterdir()) == []


def test_a_half_written_file_is_never_listed(tmp_path: Path) -> None:
    listed: list[list[str]] = []

    def stop(done: int, total: int) -> None:
        listed.append(sorted(p.name for p in tmp_path.glob("*.pdf")))
        if done == 5:
            raise RuntimeError("worker stopped")

    with pytest.raises(RuntimeError):
        render_letters(content(), patients(9), tmp_path, base_name="half", progress=stop,
                       per_file=3)
    assert listed[2] == [] and listed[3] == ["half-labels-01.pdf", "half-letters-01.pdf"]
    assert listed[4] == listed[3]
    assert sorted(p.name for p in tmp_path.iterdir()) == listed[3]  # no leftovers


def test_files_appear_under_their_name_only_once_complete(tmp_path: Path) -> None:
    target = tmp_path / "x-letters-01.pdf"
    seen: list[bool] = []

    def write(path: Path) -> int:
        path.write_bytes(b"%PDF-1.4 half")
        seen.append(target.exists())
        path.write_bytes(b"%PDF-1.4 whole")
        return 1

    assert _atomic_write(target, write)[0] == 1
    assert seen == [False] and target.read_bytes() == b"%PDF-1.4 whole"

    def fail(path: Path) -> int:
        path.write_bytes(b"%PDF-1.4 half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        _atomic_write(tmp_path / "y.pdf", fail)
    assert [p.name for p in tmp_path.iterdir()] == ["x-letters-01.pdf"]


# -- page size, logo, body -----------------------------------------------------------------


@pytest.mark.parametrize(("size", "box"), [("Letter", (612, 792)), ("A4", (595, 842))])
def test_page_size_follows_the_template(tmp_path: Path, size: str, box: tuple[int, int]) -> None:
    [letters, labels] = render_letters(content(page_size=size), patients(2), tmp_path,
                                       base_name=size)
    for page in PdfReader(letters.path).pages:
        assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == box
    label_page = PdfReader(labels.path).pages[0]
    assert (round(float(label_page.mediabox.width)), round(float(label_page.mediabox.height))) \
        == (612, 792)  # Avery 5160 sheets are US Letter


def _images(resources: Any) -> list[int]:
    """Object numbers of the image XObjects a page uses, looking inside forms too."""
    found: list[int] = []
    xobjects = resources.get("/XObject", {}) if resources else {}
    for ref in xobjects.values():
        obj = ref.get_object()
        if obj["/Subtype"] == "/Image":
            found.append(ref.idnum)
        elif obj["/Subtype"] == "/Form":
            found += _images(obj.get("/Resources"))
    return found


def test_logo_is_an_image_on_the_first_page_stored_once_per_file(tmp_path: Path) -> None:
    [letters, _] = render_letters(content(logo=png()), patients(3), tmp_path, base_name="logo")
    pages = PdfReader(letters.path).pages
    assert len(_images(pages[0]["/Resources"])) == 1
    assert {n for page in pages for n in _images(page["/Resources"])} \
        == set(_images(pages[0]["/Resources"]))


def test_no_logo_no_image(tmp_path: Path) -> None:
    [letters, _] = render_letters(content(), patients(1), tmp_path, base_name="plain")
    assert _images(PdfReader(letters.path).pages[0]["/Resources"]) == []


@pytest.mark.parametrize("logo", [b"GIF89a not ours", b"\x89PNG\r\n\x1a\nbroken"])
def test_a_logo_that_is_not_a_png_or_jpeg_is_refused_before_any_file(
        tmp_path: Path, logo: bytes) -> None:
    with pytest.raises(InvalidContent, match="logo"):
        render_letters(content(logo=logo), patients(1), tmp_path, base_name="bad")
    assert list(tmp_path.iterdir()) == []


def test_bold_and_lists_render_and_other_tags_print_as_text(tmp_path: Path) -> None:
    body = ("<p>Hello <strong>bold</strong> <u>under</u> <em>it</em></p>"
            "<ol><li>first item</li><li>second item<ul><li>nested item</li></ul></li></ol>"
            "<p><script>alert('x')</script> <img src=\"/etc/passwd\"/> a &lt; b &amp; c</p>"
            "<p><b>unclosed <i>tags</p><p>carry on</p>")
    [letters, _] = render_letters(content(body_html=body), patients(1), tmp_path,
                                  base_name="rich")
    text = page_texts(letters.path)[0]
    for words in ("Hello bold under it", "first item", "second item", "nested item",
                  "carry on", "a < b & c"):
        assert words in text
    assert "1" in text and "2" in text  # an ordered list is numbered
    assert "<script>alert('x')</script>" in text  # printed, not interpreted
    assert '<img src="/etc/passwd"/>' in text
    fonts = {text: font for _, _, text, _, font in text_runs(letters.path)[0]}
    assert fonts["bold"] == "/Helvetica-Bold" and fonts["it"] == "/Helvetica-Oblique"
    assert fonts["Hello"] == "/Helvetica"


# -- labels ----------------------------------------------------------------------------------


def text_runs(path: Path) -> list[list[tuple[float, float, str, float, str]]]:
    """Per page: (x, y, text, font size, font name) of each text run, via pypdf's visitor."""
    pages = []
    for page in PdfReader(path).pages:
        runs: list[tuple[float, float, str, float, str]] = []

        def visit(text: str, cm: list[float], tm: list[float], font: Any, size: float,
                  runs: list[tuple[float, float, str, float, str]] = runs) -> None:
            if not text.strip():
                return
            x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
            y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
            scale = math.hypot(tm[0], tm[1]) * math.hypot(cm[0], cm[1])
            runs.append((x, y, text.strip(), size * scale, str(font.get("/BaseFont", ""))))

        page.extract_text(visitor_text=visit)
        pages.append(runs)
    return pages


def test_labels_stay_inside_their_avery_5160_cells_in_letter_order(tmp_path: Path) -> None:
    people = patients(65)
    people[4] = LetterRecipient("long", "Pat0004x", "Lee0004x", (
        "Building 7, Suite 1200, The Very Long Named Medical Arts Center East Wing",
        "4500 North Extraordinarily Long Boulevard Name Parkway", "Floor 3", "Room 301",
        "Springfield, IL 62704-1234"))
    [_, labels] = render_letters(content(), people, tmp_path, base_name="lab")
    pages = text_runs(labels.path)
    assert len(pages) == 3
    order: list[str] = []
    for page_number, runs in enumerate(pages):
        names = [r for r in runs if re.fullmatch(r"Pat\d{4}x Lee\d{4}x", r[2])]
        assert len(names) <= 30
        for x, y, text, size, _font in runs:
            # which cell holds the run: every run must be inside one
            col = int((x - 0.1875 * inch) // (2.75 * inch))
            row = int((792 - 0.5 * inch - y) // (1.0 * inch))
            left = 0.1875 * inch + col * 2.75 * inch
            top = 792 - 0.5 * inch - row * 1.0 * inch
            assert 0 <= col < 3 and 0 <= row < 10
            assert left <= x and x + stringWidth(text, "Helvetica", size) <= left + 2.625 * inch
            assert x - left <= 0.25 * inch  # left-aligned, a small padding in from the edge
            assert top - 1.0 * inch <= y - 0.25 * size and y + 0.75 * size <= top
        for x, y, text, _, _ in names:
            index = len(order) - 30 * page_number
            cell_left, cell_bottom, _, cell_top = AVERY_5160.cell(index)
            assert cell_left <= x and cell_bottom <= y <= cell_top
            order.append(text)
    assert order == [p.name for p in people]
    long_runs = [r for r in pages[0] if r[1] > 792 - 0.5 * inch - 2 * inch and
                 r[0] > 0.1875 * inch + 2.75 * inch]
    assert any("62704-1234" in r[2] for r in long_runs)  # the ZIP line kept when shrunk


def test_fitted_lines_never_exceed_their_box() -> None:
    lines = ["A" * 200, "B" * 10, "C", "D", "E", "F", "G", "Springfield, IL 62704"]
    fitted = fit_lines(lines, 150, 50)
    assert fitted.height() <= 50
    assert all(stringWidth(line, "Helvetica", fitted.size) <= 150 for line in fitted.lines)
    assert fitted.lines[0].startswith("A") and fitted.lines[-1] == "Springfield, IL 62704"


# -- usable addresses ------------------------------------------------------------------------


@pytest.mark.parametrize("lines", [
    ("12 Main St", "Springfield, IL 62704"),
    ("12 Main St", "Apt 4", "Springfield IL 62704-1234"),
    ("PO Box 9", "San Juan, PR 00901"),
])
def test_usable_addresses(lines: tuple[str, ...]) -> None:
    assert usable_address(lines)


@pytest.mark.parametrize(("lines", "reason"), [
    ((), "no postal address"),
    (("", "  "), "no postal address"),
    (("Springfield, IL 62704",), "no street line"),
    (("12 Main St", "Springfield"), "city, state and ZIP"),
    (("12 Main St", "Springfield, IL 6270"), "city, state and ZIP"),
    (("12 Main St", "Springfield, ZZ 62704"), "state"),
    (("12 Main St", "London SW1A 1AA"), "city, state and ZIP"),
])
def test_unusable_addresses_say_why(lines: tuple[str, ...], reason: str) -> None:
    assert not usable_address(lines)
    assert reason in (address_problem(lines) or "")


# -- the benchmark and the README picture ----------------------------------------------------


def test_letter_benchmark_reports_render_time_beside_raw_and_file_sizes(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from scripts.bench_letters import bench_letters

    rows: list[tuple[str, float, str, dict[str, Any]]] = []
    bench_letters(None, SimpleNamespace(letters=45), lambda name, value, unit="", **kw:
                  rows.append((name, value, unit, kw)), tmp_path)
    by_name = {name: (value, unit, kw) for name, value, unit, kw in rows}
    seconds, unit, kw = by_name["letters: render (+ labels)"]
    assert unit == "s" and seconds > 0 and kw["baseline"] > 0
    assert "45 one-page letters" in kw["note"] and "1 files" in kw["note"]
    size, unit, _ = by_name["letters: letters file size"]
    assert unit == "bytes"
    assert size == (tmp_path / "letters" / "bench-letters-01.pdf").stat().st_size
    assert by_name["letters: labels file size"][0] > 0


def test_preview_picture_is_a_small_png_of_the_first_page(tmp_path: Path) -> None:
    from scripts.letter_preview import preview

    out = preview(tmp_path / "first.png", scale=1.2)
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) < 300_000
    with Image.open(out) as image:
        width, height = image.size
        assert abs(width - 612 * 1.2) <= 1 and abs(height - 792 * 1.2) <= 1
