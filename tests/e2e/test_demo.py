"""`outreach demo` (what `scripts/demo` runs on a fresh machine): every channel the product
has appears in it, on the embedded default, and its reports say what happened."""

from __future__ import annotations

import io
import itertools
import re
import subprocess
import sys
from pathlib import Path

from application.bootstrap import build
from application.event_export import FORMATS, EventExport, EventFilter
from application.settings import Settings
from domain.access import Permission


def test_the_demo_runs_text_email_and_letter_campaigns_and_prints_their_reports(
        tmp_path: Path) -> None:
    ran = subprocess.run(
        [sys.executable, "-c", "from api.cli import main; main()", "demo", "--patients",
         "400", "--emails", "60", "--letters", "40", "--folder", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-2000:]
    out = ran.stdout
    assert "Traceback" not in out + ran.stderr
    # The text campaign and both email campaigns complete
    assert "Flu shots 2026 (text): Completed" in out
    assert "Mammogram reminders (email): Completed" in out
    assert "Care gaps: book your visit (email): Completed" in out
    # The first email campaign sent introductory emails instead; the bounce@ address bounced
    assert "Introductory email needed" in out
    assert "Unsuccessful - Email Bounced" in out
    # Two days later: delivered, the bounced address skipped, the complaint and the
    # unsubscribe click opted out
    assert "No Communication: Email Bounced" in out
    assert "clicked the one-click unsubscribe link" in out
    tables = out.split("Email: Care gaps, two days later", 1)[1]
    assert "Delivered" in tables and "opted out" in tables
    # And the phone campaign: live answers, a machine, a busy line retried, a press 9
    assert "Flu vaccine calls (phone): Completed" in out
    assert "Live Answer" in out and "Answering Machine - Message Left" in out
    # And the letter campaign was printed on its start day: its files are listed
    assert "Office hours (letter): Completed" in out
    assert "letter printed" in out
    assert "-letters-01.pdf: letters" in out and "-labels-01.pdf: labels" in out
    # And the console is left to open: the printed administrator signs in to it
    shown = re.search(r"sign in as (\S+) with the password (\S+)", out)
    assert shown is not None, out[-800:]
    demo = build(Settings(database_url=f"sqlite:///{tmp_path / 'demo' / 'outreach.db'}"))
    try:
        actor = demo.users.authenticate(shown[1], shown[2], "test")
        assert actor.can(Permission.USERS_MANAGE) and actor.sees_all
        # And its history (every channel's events) exports the same by the fast path as by
        # the plain one: both views, both formats (application/event_export.py)
        for internal, fmt in itertools.product((False, True), FORMATS):
            fast, plain = io.BytesIO(), io.BytesIO()
            for out_, is_plain in ((fast, False), (plain, True)):
                EventExport(demo.store, demo.contact_keys, internal=internal,
                            flt=EventFilter(), plain=is_plain).write(out_, fmt)
            assert fast.getvalue() == plain.getvalue(), (internal, fmt)
            assert fast.getvalue().count(b"\n") > 1000
    finally:
        demo.close()
