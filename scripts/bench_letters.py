"""The letter benchmark: the time to render a 4,000-letter campaign (letters and labels, 200
per file, a realistic one-page body with a logo) beside reportlab drawing as many pages with
one drawString each (canvas only, no layout), measured in the same run; and the size of the
files a printer downloads.

    python -m scripts.bench_letters [--letters N]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reportlab.lib.pagesizes import LETTER
from reportlab.pdfgen.canvas import Canvas

from gateways.letters import LETTERS_PER_FILE, file_batches
from gateways.pdf_letters import render_letters
from scripts.letter_samples import sample_content, sample_patients

CAMPAIGN_LETTERS = 4_000  # the product's campaign size cap

Report = Callable[..., None]


def raw_pages(folder: Path, pages: int, per_file: int = LETTERS_PER_FILE) -> None:
    """The baseline: as many pages, in files of `per_file`, one drawString per page."""
    for number, batch in enumerate(file_batches(pages, per_file), start=1):
        canvas = Canvas(str(folder / f"raw-{number:02d}.pdf"), pagesize=LETTER,
                        invariant=True, pageCompression=1)
        for page in batch:
            canvas.setFont("Helvetica", 11)
            canvas.drawString(72, 700, f"Page {page + 1}")
            canvas.showPage()
        canvas.save()


def bench_letters(servers: Any, sizes: Any, report: Report, workdir: Path) -> None:
    """Report the render time (s) beside the raw baseline, and the average file sizes.
    `servers` is unused (letters need none); `sizes.letters`, when present, overrides the
    4,000 letters."""
    del servers
    n = int(getattr(sizes, "letters", CAMPAIGN_LETTERS))
    content, people = sample_content(), sample_patients(n)
    ours, raw = workdir / "letters", workdir / "letters-raw"
    for folder in (ours, raw):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)

    started = time.perf_counter()
    files = render_letters(content, people, ours, base_name="bench")
    elapsed = time.perf_counter() - started
    pages = sum(f.pages for f in files)

    started = time.perf_counter()
    raw_pages(raw, pages)
    baseline = time.perf_counter() - started

    letters = [f for f in files if f.kind == "letters"]
    labels = [f for f in files if f.kind == "labels"]
    report("letters: render (+ labels)", elapsed, "s", baseline=baseline,
           note=f"{n:,} one-page letters with a logo in {len(letters)} files of ≤ "
                f"{LETTERS_PER_FILE} + {len(labels)} label files ({pages:,} pages); raw: "
                f"reportlab canvas, {pages:,} pages of one drawString each")
    if letters:
        report("letters: letters file size", sum(f.bytes for f in letters) / len(letters),
               "bytes", note=f"average of {len(letters)} files; "
                             f"{sum(f.bytes for f in letters) / n:,.0f} bytes per letter")
        report("letters: labels file size", sum(f.bytes for f in labels) / len(labels),
               "bytes", note=f"average of {len(labels)} files (30 labels a sheet)")


def _print_report(name: str, value: float, unit: str = "", *, baseline: float | None = None,
                  note: str = "") -> None:
    ratio = f" (raw {baseline:.3g}, ratio {value / baseline:.2f})" if baseline else ""
    print(f"{name}: {value:,.3f} {unit}{ratio}  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--letters", type=int, default=CAMPAIGN_LETTERS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        bench_letters(None, argparse.Namespace(letters=args.letters), _print_report,
                      Path(workdir))


if __name__ == "__main__":
    main()
