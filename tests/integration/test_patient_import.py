"""Importing practice files: summaries, rejects, idempotence, updates by id, replay — on
SQLite and PostgreSQL."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import structlog

from application.import_projector import ImportProjectionError, ProjectorProcess, store_settings
from application.patients_import import FileImport, ImportFileError
from application.synthetic import write_dataset
from domain.lists import build_query
from domain.patients import ImportKind
from projections.patients import OWN_TABLES
from projections.runner import rebuild
from tests.patient_data import (
    APPOINTMENT_HEADER,
    PATIENT_HEADER,
    PROVIDER_HEADER,
    Backend,
    count_events,
    csv_rows,
    open_backend,
    patient_row,
    write_csv,
)


@pytest.fixture
def pg_backend(pg_url: str) -> Iterator[Backend]:
    with open_backend(pg_url) as opened:
        yield opened


def _providers(folder: Path) -> Path:
    return write_csv(folder / "providers.csv", PROVIDER_HEADER,
                     [["D1", "Dr. Adams", "North", "Yes"], ["D2", "Dr. Baker", "South", "No"]])


def _patient(backend: Backend, patient_id: str) -> dict[str, object]:
    row = backend.db.fetchone(
        "SELECT first_name, last_name, mobile, email, status, date_of_birth FROM patients"
        " WHERE patient_id = ?", (patient_id,))
    assert row is not None
    return dict(zip(("first_name", "last_name", "mobile", "email", "status", "date_of_birth"),
                    row, strict=True))


def test_an_import_reports_new_and_rejected_rows_and_writes_the_rejects_file(
        backend: Backend, tmp_path: Path) -> None:
    # given a patients file with two good rows and two bad ones
    path = write_csv(tmp_path / "in" / "patients.csv", PATIENT_HEADER, [
        patient_row("P1", "Ann", "Lee", mobile="(512) 555-0101", email="ann@example.com"),
        patient_row("P2", "Bob", "Ray", email="bob@"),
        patient_row("P3", "Cy", "", dob="2099-01-01"),
        patient_row("P4", "Dee", "Kim", mobile="512-555-0104"),
    ])
    # when it is imported with a rejects folder
    summary = backend.service.import_file("patients", path, tmp_path / "rejects")
    # then the summary counts every row and names each bad one by line and reason
    assert (summary.rows, summary.new, summary.updated, summary.unchanged, summary.rejected) \
        == (4, 2, 0, 0, 2)
    assert [(r.line, r.reason) for r in summary.rejections] == [
        (3, "email is not a valid email address"),
        (4, "last name is missing; date of birth is in the future"),
    ]
    # and the rejects file holds the original cells, the line and the reason
    assert summary.rejects_file == tmp_path / "rejects" / "patients.rejects.csv"
    rejects = csv_rows(summary.rejects_file)
    assert rejects[0] == [*PATIENT_HEADER, "line", "reason"]
    assert rejects[1][:2] == ["P2", "Bob"] and rejects[1][-2:] == ["3", summary.rejections[0]
                                                                   .reason]
    # and the good rows are in the patient list, phones in E.164
    assert _patient(backend, "P1")["mobile"] == "+15125550101"
    assert _patient(backend, "P4")["mobile"] == "+15125550104"


def test_re_importing_the_same_file_changes_nothing(backend: Backend, tmp_path: Path) -> None:
    # given a file already imported
    path = write_csv(tmp_path / "patients.csv", PATIENT_HEADER,
                     [patient_row(f"P{n}", "Ann", f"Lee{n}") for n in range(1, 6)])
    backend.service.import_file("patients", path)
    events = count_events(backend.store)
    # when it is imported again
    again = backend.service.import_file("patients", path)
    # then every row is unchanged and nothing is recorded
    assert (again.new, again.updated, again.unchanged) == (0, 0, 5)
    assert again.import_id is None
    assert count_events(backend.store) == events


def test_a_later_file_updates_patients_by_id(backend: Backend, tmp_path: Path) -> None:
    # given Ann imported with one phone
    backend.service.import_file("patients", write_csv(tmp_path / "a.csv", PATIENT_HEADER, [
        patient_row("P1", "Ann", "Lee", mobile="512-555-0101"),
        patient_row("P2", "Bob", "Ray")]))
    # when a later file changes her phone and status and adds Cy
    summary = backend.service.import_file("patients", write_csv(
        tmp_path / "b.csv", PATIENT_HEADER, [
            patient_row("P1", "Ann", "Lee", mobile="512-555-0199", status="Inactive"),
            patient_row("P2", "Bob", "Ray"), patient_row("P3", "Cy", "Cole")]))
    # then Ann is updated in place, Bob unchanged, Cy new
    assert (summary.new, summary.updated, summary.unchanged) == (1, 1, 1)
    assert _patient(backend, "P1")["mobile"] == "+15125550199"
    assert _patient(backend, "P1")["status"] == "Inactive"


def test_a_patient_repeated_in_one_file_keeps_its_first_row_and_rejects_the_later_one(
        backend: Backend, tmp_path: Path) -> None:
    # given a file that names P1 twice, with different emails, 2,500 rows apart (in
    # different chunks and save windows)
    rows = [patient_row("P1", "Ann", "Lee", email="old@example.com"),
            *[patient_row(f"X{n}", "Filler", f"Row{n}") for n in range(2500)],
            patient_row("P1", "Ann", "Lee", email="new@example.com")]
    path = write_csv(tmp_path / "p.csv", PATIENT_HEADER, rows)
    # when it is imported
    summary = backend.service.import_file("patients", path)
    # then the first row is kept and the later one rejected, naming the first's line
    assert (summary.new, summary.updated, summary.unchanged, summary.rejected) == (2501, 0, 0, 1)
    assert [(r.line, r.reason) for r in summary.rejections] == [
        (2503, "duplicate id, first seen on line 2")]
    assert _patient(backend, "P1")["email"] == "old@example.com"
    # and importing it again changes nothing and records nothing
    events = count_events(backend.store)
    again = backend.service.import_file("patients", path)
    assert (again.new, again.updated, again.unchanged, again.rejected) == (0, 0, 2501, 1)
    assert again.import_id is None and count_events(backend.store) == events


def test_a_file_with_a_bom_imports_like_one_without(backend: Backend, tmp_path: Path) -> None:
    rows = [patient_row("P1", "Zoë", "Núñez", dob="02/03/1950")]
    plain = backend.service.import_file("patients",
                                        write_csv(tmp_path / "plain.csv", PATIENT_HEADER, rows))
    bom = backend.service.import_file(
        "patients", write_csv(tmp_path / "bom.csv", PATIENT_HEADER, rows, bom=True))
    assert (plain.new, bom.unchanged) == (1, 1)
    assert _patient(backend, "P1")["first_name"] == "Zoë"


def test_line_numbers_count_physical_lines_and_bad_bytes_reject_only_their_row(
        backend: Backend, tmp_path: Path) -> None:
    # given a UTF-8 file (Zoë) with a blank line, a quoted multi-line cell and one damaged
    # row whose byte is not UTF-8
    path = tmp_path / "messy.csv"
    path.write_bytes(
        b"Patient ID,First Name,Last Name,DOB,Address\n"
        b"P1,Ann,Lee,1950-02-03,\"1 Main St\nSuite 2\"\n"
        b"\n"
        b"P2,Bo\xe9,Ray,1960-01-01,\n"
        b"P3,Zo\xc3\xab,Cole,1970-01-01,\n")
    # when it is imported
    summary = backend.service.import_file("patients", path)
    # then it is read as UTF-8, the damaged row is named by its own line and the others
    # are accepted
    assert summary.read_as == "UTF-8, comma-separated"
    assert [(r.line, r.reason) for r in summary.rejections] == [
        (5, "first name is not valid UTF-8 text")]
    assert summary.new == 2
    assert _patient(backend, "P3")["first_name"] == "Zoë"
    # and the rejects file is valid UTF-8 that shows the bad byte as \xe9
    assert summary.rejects_file is not None
    summary.rejects_file.read_bytes().decode("utf-8")  # strict: raises if it is not
    assert csv_rows(summary.rejects_file)[1][:2] == ["P2", "Bo\\xe9"]


def test_rows_checked_in_a_child_process_import_exactly_as_in_a_thread(
        backend: Backend, tmp_path: Path) -> None:
    # given a messy file: a multi-line cell, a blank line, bytes that are not UTF-8, a bad
    # phone, a row with too many fields, a row repeated exactly, an id repeated
    path = tmp_path / "messy.csv"
    path.write_bytes(
        b"Patient ID,First Name,Last Name,DOB,Mobile,Address\n"
        b"P1,Ann,Lee,1950-02-03,512-555-0101,\"1 Main St\nSuite 2\"\n"
        b"\n"
        b"P2,Bo\xe9,Ray,1960-01-01,,\n"
        b"P3,Cy,Cole,1970-01-01,123,\n"
        b"P4,Di,Fox,1980-01-01,,,extra\n"
        b"P5,Ed,Gray,1990-01-01,(512) 555-0105,\n"
        b"P6,Zo\xc3\xab,Gray,1990-01-01,,\n"
        b"P5,Ed,Gray,1990-01-01,(512) 555-0105,\n"
        b"P1,Ann,Lee,1950-02-03,512-555-0101,\n")
    # when it is imported with its rows checked in a thread, then again in a child process
    in_thread = backend.service.import_file("patients", path, tmp_path / "thread",
                                            check_in_process=False)
    thread_rejects = (tmp_path / "thread" / "messy.rejects.csv").read_bytes()
    in_child = backend.service.import_file("patients", path, tmp_path / "child",
                                           check_in_process=True)
    # then both read the same rows, reject the same ones for the same reasons, write the
    # same rejects file; the second finds the first's rows already there
    assert [(r.line, r.reason) for r in in_child.rejections] \
        == [(r.line, r.reason) for r in in_thread.rejections]
    assert [r.line for r in in_thread.rejections] == [5, 6, 7, 11]
    assert (tmp_path / "child" / "messy.rejects.csv").read_bytes() == thread_rejects
    assert (in_thread.rows, in_thread.new, in_thread.unchanged, in_thread.rejected) \
        == (8, 3, 1, 4)
    assert (in_child.rows, in_child.unchanged, in_child.new, in_child.rejected) == (8, 4, 0, 4)


def test_a_read_model_of_an_older_shape_is_rebuilt_from_the_history(
        backend: Backend, tmp_path: Path) -> None:
    # given patients imported, then the database marked as built by an older version (no
    # schema version recorded) with its rows gone stale
    path = write_csv(tmp_path / "patients.csv", PATIENT_HEADER, [
        patient_row("P1", "Ann", "Lee", mobile="512-555-0101"),
        patient_row("P2", "Bob", "Ray")])
    backend.service.import_file("patients", path)
    backend.db.execute("DELETE FROM projection_schema WHERE name = 'patients'")
    backend.db.execute("UPDATE patients SET first_name = 'STALE'")
    # when a new process opens the database
    with open_backend(backend.service.settings.database_url) as reopened:
        reopened.service.catch_up()
        # then the patient tables were dropped and rebuilt from the events: current shape,
        # current rows, and the version recorded
        assert _patient(reopened, "P1")["first_name"] == "Ann"
        assert _patient(reopened, "P2")["first_name"] == "Bob"
        version = reopened.db.fetchone(
            "SELECT version FROM projection_schema WHERE name = 'patients'")
        assert version is not None and version[0] == reopened.service.patients_projection \
            .schema_version
    # and a database of the current shape is left as it is when opened again
    backend.db.execute("UPDATE patients SET first_name = 'KEPT' WHERE patient_id = 'P2'")
    with open_backend(backend.service.settings.database_url) as again:
        again.service.catch_up()
        assert _patient(again, "P2")["first_name"] == "KEPT"


def test_a_file_that_is_not_the_kind_asked_for_is_refused_whole(backend: Backend,
                                                                tmp_path: Path) -> None:
    appointments = write_csv(tmp_path / "appointments.csv", APPOINTMENT_HEADER, [])
    with pytest.raises(ImportFileError, match="not a patients file: missing column"):
        backend.service.import_file("patients", appointments)
    with pytest.raises(ImportFileError, match="cannot read"):
        backend.service.import_file("patients", tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ImportFileError, match="is empty"):
        backend.service.import_file("patients", tmp_path / "empty.csv")


def test_every_kind_of_file_lands_in_its_table(backend: Backend, tmp_path: Path) -> None:
    # given a small synthetic practice
    paths = write_dataset(tmp_path / "data", 60, seed=3, today=date(2025, 3, 10))
    # when every file is imported
    summaries = {kind: backend.service.import_file(kind, path) for kind, path in paths.items()}
    # then every accepted row is in the read model
    for kind, table in (("providers", "providers"), ("patients", "patients"),
                        ("appointments", "appointments"), ("care-gaps", "care_gaps"),
                        ("conditions", "conditions"), ("billing", "billing")):
        row = backend.db.fetchone(f"SELECT COUNT(*) FROM {table}")
        assert row is not None and row[0] == summaries[kind].accepted > 0, kind


def test_replaying_the_history_rebuilds_the_same_tables(backend: Backend, tmp_path: Path) -> None:
    # given a practice imported in several files, some rows updated later
    paths = write_dataset(tmp_path / "data", 120, seed=5, today=date(2025, 3, 10))
    for kind in ("patients", "appointments", "providers", "care-gaps", "conditions", "billing"):
        backend.service.import_file(kind, paths[kind])
    backend.service.import_file("patients", write_csv(tmp_path / "later.csv", PATIENT_HEADER, [
        patient_row("P0000001", "Ann", "Lee", pcp="D0001", status="Inactive")]))
    before = {t: backend.db.fetchall(f"SELECT * FROM {t} ORDER BY 1, 2") for t in OWN_TABLES}
    # when the read model is emptied and rebuilt from the events
    rebuild(backend.store, backend.db, [backend.service.patients_projection])
    # then every table is as it was
    after = {t: backend.db.fetchall(f"SELECT * FROM {t} ORDER BY 1, 2") for t in OWN_TABLES}
    assert after == before


def test_windows_projected_in_a_child_process_give_the_read_model_a_replay_gives(
        backend: Backend, tmp_path: Path) -> None:
    # given a practice whose files are projected by a process of their own (PostgreSQL;
    # SQLite keeps its one writer, a thread)
    paths = write_dataset(tmp_path / "data", 150, seed=9, today=date(2025, 3, 10))
    starts_a_child = backend.service._projector_process(paths["patients"], True) is not None
    assert starts_a_child == (backend.db.dialect == "postgres")
    for kind in ("providers", "appointments", "care-gaps", "conditions", "billing",
                 "patients"):
        backend.service.import_file(kind, paths[kind], project_in_process=True)
    before = {t: backend.db.fetchall(f"SELECT * FROM {t} ORDER BY 1, 2") for t in OWN_TABLES}
    assert len(before["patients"]) > 100
    # when the read model is rebuilt from the events by this process
    rebuild(backend.store, backend.db, [backend.service.patients_projection])
    # then every table is as the child process left it
    after = {t: backend.db.fetchall(f"SELECT * FROM {t} ORDER BY 1, 2") for t in OWN_TABLES}
    assert after == before


class _KilledProjector(ProjectorProcess):
    """The real projecting process, killed (SIGKILL) as soon as it is given work."""

    def request(self, window: int) -> None:
        super().request(window)
        self._child.kill()


def test_a_killed_projecting_process_is_reported_and_loses_nothing(
        pg_backend: Backend, tmp_path: Path) -> None:
    # given a patients file, and a projecting process that dies as the first window is saved
    path = write_csv(tmp_path / "patients.csv", PATIENT_HEADER, [
        patient_row(f"P{n}", "Ann", f"Lee{n}", mobile="512-555-0101") for n in range(50)])
    service = pg_backend.service
    env = store_settings(pg_backend.store)
    assert env is not None
    url = service.settings.database_url
    # when the file is imported
    with pytest.raises(ImportProjectionError, match="exit code -9"):
        FileImport(pg_backend.store, pg_backend.db, service.catch_up, ImportKind.PATIENTS,
                   path, None, date(2025, 3, 10), pg_backend.clock.now(),
                   projector=lambda: _KilledProjector(env, url)).run()
    # then the rows recorded before the failure are in the event store: the next catch-up
    # projects them, and importing the file again finds every one of them
    service.catch_up()
    again = service.import_file("patients", path)
    assert (again.new, again.unchanged) == (0, 50)
    row = pg_backend.db.fetchone("SELECT COUNT(*) FROM patients")
    assert row is not None and row[0] == 50


def test_a_provider_imported_after_its_patients_brings_them_into_the_lists(
        backend: Backend, tmp_path: Path) -> None:
    # given patients whose PCP is not known yet
    backend.service.import_file("patients", write_csv(tmp_path / "p.csv", PATIENT_HEADER, [
        patient_row("P1", "Ann", "Lee", pcp="D1")]))
    assert backend.service.list(build_query()).total == 0
    # when the providers file arrives, then they show up, with the PCP's name
    backend.service.import_file("providers", _providers(tmp_path))
    result = backend.service.list(build_query(columns=["name", "pcp"]))
    assert result.rows == [{"patient_id": "P1", "name": "Lee, Ann", "pcp": "Dr. Adams"}]
    # and deactivating the provider takes them out again
    backend.service.import_file("providers", write_csv(tmp_path / "pr2.csv", PROVIDER_HEADER, [
        ["D1", "Dr. Adams", "North", "No"]]))
    assert backend.service.list(build_query()).total == 0


def test_a_later_appointments_file_moves_an_appointment_and_both_patients_follow(
        backend: Backend, tmp_path: Path) -> None:
    # given two patients whose PCP is inactive, and Ann's appointment with active Dr. Adams
    backend.service.import_file("providers", _providers(tmp_path))
    backend.service.import_file("patients", write_csv(tmp_path / "p.csv", PATIENT_HEADER, [
        patient_row("P1", "Ann", "Lee", pcp="D2"), patient_row("P2", "Bob", "Ray", pcp="D2")]))
    backend.service.import_file("appointments", write_csv(
        tmp_path / "a1.csv", APPOINTMENT_HEADER,
        [["A1", "P1", "2025-03-12 10:00", "D1", "Main", "Visit", "Scheduled", ""]]))
    assert [r["patient_id"] for r in backend.service.list(build_query()).rows] == ["P1"]
    # when a later file says the appointment is Bob's
    summary = backend.service.import_file("appointments", write_csv(
        tmp_path / "a2.csv", APPOINTMENT_HEADER,
        [["A1", "P2", "2025-03-12 10:00", "D1", "Main", "Visit", "Scheduled", ""]]))
    # then it is updated by id, and Bob is in scope while Ann is not any more
    assert (summary.updated, summary.new) == (1, 0)
    assert [r["patient_id"] for r in backend.service.list(build_query()).rows] == ["P2"]


def test_imports_log_counts_never_patient_data(backend: Backend, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", PATIENT_HEADER, [
        patient_row("P1", "Zebulon", "Quackenbush", mobile="512-555-0101",
                    email="zeb@example.com"),
        patient_row("P2", "Bad", "Email", email="nope@")])
    with structlog.testing.capture_logs() as logs:
        backend.service.import_file("patients", path)
    text = repr(logs)
    assert "patients.import.finished" in text
    for secret in ("Zebulon", "Quackenbush", "5125550101", "555-0101", "zeb@example.com",
                   "nope@"):
        assert secret not in text


def _import_peak(folder: Path, patients: int) -> int:
    paths = write_dataset(folder / "data", patients, seed=9, today=date(2025, 3, 10))
    with open_backend(f"sqlite:///{folder / 'db' / 'o.db'}") as backend:
        tracemalloc.start()
        summary = backend.service.import_file("patients", paths["patients"])
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert summary.rows == patients
    return peak


def test_a_large_file_streams_in_bounded_memory(tmp_path: Path) -> None:
    # given two files, one 2.5 times the other (both beyond a save window plus the pipe)
    # when each is imported while memory is traced
    small = _import_peak(tmp_path / "small", 22_000)
    large = _import_peak(tmp_path / "large", 55_000)
    # then the peak does not grow with the file: rows stream through a fixed window
    assert large < small * 1.25, f"peaks {small / 1e6:.1f} MB and {large / 1e6:.1f} MB"
