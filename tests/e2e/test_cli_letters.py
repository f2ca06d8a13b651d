"""Letters from the command line: create a letter campaign, print it now with `letters
make`, list the files and download them to print; refusals are one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pypdf import PdfReader

from application.bootstrap import build
from application.settings import Settings
from tests.fixtures_app import import_patients, patient_row

RETURN = "Main=Total Healthcare|100 Main St|Springfield, IL 62701"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path}/outreach.db"
    o = build(Settings(database_url=url))
    rows = []
    for n, first in enumerate(("Ann", "Bea", "Cy")):
        row = patient_row(f"L{n}", None, first=first)
        row.update({"Address Line 1": f"{n + 1} Oak St", "City": "Springfield", "State": "IL",
                    "Postal Code": "62701"})
        rows.append(row)
    import_patients(o, tmp_path, rows)
    o.close()
    return {**os.environ, "OUTREACH_DATABASE_URL": url, "OUTREACH_LOG_LEVEL": "WARNING",
            "OUTREACH_RETURN_ADDRESSES": RETURN,
            "OUTREACH_LETTERS_DIR": str(tmp_path / "letters"), "COLUMNS": "200"}


def outreach(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from api.cli import main; main()", *args],
                          env=env, capture_output=True, text=True, timeout=120)


def test_letters_are_made_listed_and_downloaded_from_the_command_line(env, tmp_path):
    created = outreach(env, "campaign", "create", "--channel", "letter", "--name", "Hours",
                       "--body", "<p>We now open at <b>8 am</b>.</p>", "--active", "--json")
    assert created.returncode == 0, created.stderr
    cid = json.loads(created.stdout)["campaign_id"]
    # Not ready before they are made
    early = outreach(env, "letters", "list", cid[:8])
    assert early.returncode == 1 and early.stderr.startswith("error: the letters are not ready")
    made = outreach(env, "letters", "make", cid[:8], "--json")
    assert made.returncode == 0, made.stderr
    summary = json.loads(made.stdout)
    assert (summary["letters"], summary["skipped"]) == (3, 0)
    listed = json.loads(outreach(env, "letters", "list", cid[:8], "--json").stdout)
    assert sorted(f["kind"] for f in listed["files"]) == ["labels", "letters"]
    copied = outreach(env, "letters", "download", cid[:8], "--to", str(tmp_path / "print"))
    assert copied.returncode == 0, copied.stderr
    letters = next(Path(p) for p in copied.stdout.split() if "-letters-" in p)
    assert len(PdfReader(letters).pages) == 3


def test_a_letter_campaign_with_merge_fields_or_no_return_address_is_refused_in_one_line(env):
    merged = outreach(env, "campaign", "create", "--channel", "letter", "--name", "X",
                      "--body", "<p>Hi {{ first_name }}</p>")
    assert merged.returncode == 1
    assert merged.stderr == "error: letters take no merge fields: the greeting names the " \
                            "patient\n"
    bare = {**env, "OUTREACH_RETURN_ADDRESSES": ""}
    unset = outreach(bare, "campaign", "create", "--channel", "letter", "--name", "X",
                     "--body", "<p>Hi</p>")
    assert unset.returncode == 1 and "OUTREACH_RETURN_ADDRESSES" in unset.stderr
    wrong = outreach(env, "campaign", "create", "--channel", "letter", "--name", "X",
                     "--body", "<p>Hi</p>", "--subject", "S")
    assert wrong.returncode == 2 and wrong.stderr == "error: --subject: only for --channel " \
                                                     "email\n"
