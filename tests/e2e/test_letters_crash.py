"""The letter worker killed (SIGKILL) half-way through printing a campaign, then started
again: no letter lost, none printed twice in the files staff are given.

Each file of 200 letters is recorded with its letters' outcomes in one save
(`Campaign.LetterFilePrinted` + each letter Sent), and every run prints under a name of its
own: a run killed after some files prints the rest into new files on restart and lists them
beside the first ones; a file written but not recorded is never listed."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from uuid import UUID

from pypdf import PdfReader

from application.bootstrap import build
from application.settings import Settings
from domain.channels import Channel
from tests.fixtures_app import import_patients, patient_row

PATIENTS = 3000
RETURN = "Main=Total Healthcare|100 Main St|Springfield, IL 62701"


def printed_files(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT COUNT(*) FROM stored_events WHERE topic ="
                           " 'domain.campaign:Campaign.LetterFilePrinted'").fetchone()
    return int(row[0])


def test_a_letter_worker_killed_half_way_loses_and_doubles_no_letter(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/outreach.db"
    env = {**os.environ, "OUTREACH_DATABASE_URL": url, "OUTREACH_LOG_LEVEL": "WARNING",
           "OUTREACH_RETURN_ADDRESSES": RETURN, "OUTREACH_LETTERS_DIR": str(tmp_path / "out"),
           "OUTREACH_CAMPAIGN_SIZE_CAP": str(PATIENTS)}
    settings = Settings(database_url=url, return_addresses=RETURN,
                        letters_dir=tmp_path / "out", campaign_size_cap=PATIENTS)
    o = build(settings)
    rows = []
    for n in range(PATIENTS):
        row = patient_row(f"P{n:05d}", None, first=f"Pat{n}")
        row.update({"Address Line 1": f"{n} Elm St", "City": "Springfield", "State": "IL",
                    "Postal Code": "62701"})
        rows.append(row)
    import_patients(o, tmp_path, rows)
    cid = o.campaigns.create(name="Closure", channel=Channel.LETTER,
                             body="<p>The office is closed on Friday.</p>",
                             audience=[r["Patient ID"] for r in rows], active=True)
    o.close()
    make = [sys.executable, "-c", "from api.cli import main; main()", "letters", "make",
            str(cid), "--json"]
    # When the worker is killed once it has recorded some files, not all
    victim = subprocess.Popen(make, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    db = tmp_path / "outreach.db"
    deadline = time.monotonic() + 120
    while printed_files(db) == 0 and time.monotonic() < deadline and victim.poll() is None:
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    recorded_before = printed_files(db)
    assert 0 < recorded_before < PATIENTS // 200, "the kill did not land half-way"
    # And started again
    again = subprocess.run(make, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    # Then every patient's letter is in exactly one listed file, once
    o = build(settings)
    try:
        o.catch_up()
        files, folder = o.letters.files(UUID(str(cid)))
        letters = [f for f in files if f["kind"] == "letters"]
        assert sum(int(str(f["count"])) for f in letters) == PATIENTS
        for f in letters:
            assert len(PdfReader(folder / str(f["name"])).pages) == f["count"]
        report = o.campaigns.report(UUID(str(cid)))
        assert {r.status for r in report} == {"Sent"}
        refs = [r for r in o.db.fetchall(
            "SELECT provider_ref FROM communications WHERE campaign_id = ?", (str(cid),))]
        names = {str(f["name"]) for f in letters}
        assert len({r[0] for r in refs}) == PATIENTS
        assert {r[0].split("#")[0] for r in refs} <= names
    finally:
        o.close()
