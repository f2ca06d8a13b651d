"""Render a sample letter (a synthetic patient of "Total Healthcare") and save its first
page as a PNG for the README.

    python -m scripts.letter_preview [--out docs/letter-first-page.png] [--scale 1.2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pypdfium2 as pdfium

from gateways.pdf_letters import render_letters
from scripts.letter_samples import sample_content, sample_patients

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "letter-first-page.png"


def preview(out: Path = DEFAULT_OUT, scale: float = 1.2) -> Path:
    """Write the first page of a sample letter to `out` (PNG); returns `out`."""
    with tempfile.TemporaryDirectory() as folder:
        files = render_letters(sample_content(), sample_patients(1), Path(folder),
                               base_name="preview")
        pdf = pdfium.PdfDocument(str(files[0].path))
        try:
            image = pdf[0].render(scale=scale).to_pil()
        finally:
            pdf.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out, "PNG", optimize=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--scale", type=float, default=1.2)
    args = parser.parse_args()
    path = preview(args.out, args.scale)
    print(f"{path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
