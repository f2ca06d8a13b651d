"""Letter campaigns end to end: activation plans one letter per patient; on the start day the
workers print them (200 per file, with address labels) and record each as sent on its mail
date; staff list and download the files. Opted-out patients and unusable addresses are
skipped with the reason."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pypdf import PdfReader

from application.clock import SimulatedClock
from domain.channels import Channel
from domain.preferences import Duration, OptOutType, PatientPreferences
from gateways.null_voice import NullVoiceGateway
from tests.fixtures_app import TUESDAY_9AM, import_patients, patient_row
from workers.runner import EmbeddedRunner

ADDRESS = {"Address Line 1": "100 Main St", "City": "Springfield", "State": "IL",
           "Postal Code": "62701"}
RETURN = "Main=Total Healthcare|200 Clinic Rd|Springfield, IL 62702"


def with_address(pid: str, first: str, **extra: str) -> dict[str, str]:
    row = patient_row(pid, None, first=first)
    row.update({**ADDRESS, **extra})
    return row


def test_letters_are_printed_on_the_start_day_and_count_as_sent_on_the_mail_date(
        make_outreach, tmp_path: Path) -> None:
    clock = SimulatedClock(TUESDAY_9AM)
    o = make_outreach(clock=clock, return_addresses=RETURN, letters_dir=tmp_path / "letters",
                      voice_gateway=NullVoiceGateway())
    import_patients(o, tmp_path, [
        with_address("L1", "Ann"), with_address("L2", "Bea"), with_address("L3", "Cy"),
        with_address("L4", "Di", City=""),  # no city: not mailable
    ])
    prefs = PatientPreferences(patient_id="L3")
    prefs.opt_out(OptOutType.GLOBAL, Duration(), clock.now().date(), clock.now(), "asked")
    o.store.save(prefs)
    start = (TUESDAY_9AM + timedelta(days=1)).date()
    cid = o.campaigns.create(name="Flu letters", channel=Channel.LETTER,
                             body="<p>Flu shots are here.</p><ul><li>Call us</li></ul>",
                             audience=["L1", "L2", "L3", "L4"], start=start, active=True)
    # Nothing is printed before the start day
    EmbeddedRunner(o).run_simulated(TUESDAY_9AM + timedelta(hours=6))
    assert o.letters.files(cid)[0] == []
    # On the start day the workers print them
    EmbeddedRunner(o).run_simulated(TUESDAY_9AM + timedelta(days=2))
    files, folder = o.letters.files(cid)
    kinds = sorted(str(f["kind"]) for f in files)
    assert kinds == ["labels", "letters"]
    letters = next(f for f in files if f["kind"] == "letters")
    pdf = PdfReader(folder / str(letters["name"]))
    assert len(pdf.pages) == 2
    assert "Dear Ann," in pdf.pages[0].extract_text()
    assert "Dear Bea," in pdf.pages[1].extract_text()
    # Each letter counts as sent on its mail date; the others say why not
    report = {r.patient_id: r for r in o.campaigns.report(cid)}
    assert report["L1"].status == report["L2"].status == "Sent"
    assert report["L3"].status == "Skipped" and report["L3"].reason == "opted out"
    assert report["L4"].status == "Skipped"
    assert report["L4"].reason.startswith("no usable postal address")
    assert o.campaigns.get(cid).status == "Completed"


def test_a_campaign_of_450_letters_makes_three_letter_files_and_three_label_files(
        make_outreach, tmp_path: Path) -> None:
    clock = SimulatedClock(TUESDAY_9AM)
    o = make_outreach(clock=clock, return_addresses=RETURN, letters_dir=tmp_path / "letters",
                      campaign_size_cap=1000, voice_gateway=NullVoiceGateway())
    rows = [with_address(f"P{n:04d}", f"Pat{n}") for n in range(450)]
    import_patients(o, tmp_path, rows)
    cid = o.campaigns.create(name="Closure", channel=Channel.LETTER,
                             body="<p>The office is closed on Friday.</p>",
                             audience=[r["Patient ID"] for r in rows], active=True)
    made = o.letters.make(cid)
    assert made.letters == 450 and made.skipped == 0
    counts = [f["count"] for f in made.files if f["kind"] == "letters"]
    assert counts == [200, 200, 50]
    assert len([f for f in made.files if f["kind"] == "labels"]) == 3
