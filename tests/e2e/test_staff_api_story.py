"""The staff API as a clinic's IT person lives it: a real `outreach serve` process and the
real `outreach` command line on one SQLite file, spoken to over HTTP as curl would.

The administrator is made at the command line, signs in from a browser (session cookie and
CSRF token) and takes a bearer token for scripts; imports the practice's files; adds a
colleague who may run campaigns and nothing else; that colleague makes and activates a text
campaign and is refused an opt-out; the administrator reads both in the audit trail, over
HTTP and at the command line; a new password ends the colleague's token. Five wrong
passwords lock an account, even against the right one.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

OUTREACH = Path(sys.executable).with_name("outreach")  # the console script staff run
ADMIN_EMAIL, ADMIN_PASSWORD = "admin@clinic.example", "Blue-Heron-42!"
CAM_EMAIL, CAM_PASSWORD = "cam@clinic.example", "Quiet-Otter-73"
PROBLEM = "application/problem+json"
BODY = "Total Healthcare: flu shots are in. Call (312) 555-0199 to book."

PROVIDERS = "Provider ID,Name,Groups\nD001,Dr. Rosa Rivera,North Clinic\n"
# Five rows, one of them without a last name: four accepted, one rejected.
PATIENTS = """Patient ID,First Name,Last Name,Date of Birth,Mobile Phone,PCP Provider ID
P001,Ann,Lee,1950-03-04,(312) 555-0101,D001
P002,Bo,Diaz,1962-11-20,(312) 555-0102,D001
P003,Cy,Okafor,1978-06-01,(312) 555-0103,D001
P004,Di,Novak,1985-01-15,(312) 555-0104,D001
P005,Ed,,1990-02-02,(312) 555-0105,D001
"""


@dataclass(frozen=True)
class Clinic:
    url: str
    env: dict[str, str]
    folder: Path

    def outreach(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(OUTREACH), *args], env=self.env, input=stdin,
                              capture_output=True, text=True, timeout=60, cwd=self.folder)

    def client(self, bearer: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clinic]:
    """A fresh installation: its first administrator made with `outreach users
    create-admin`, then `outreach serve` (simulator gateway, unsigned webhooks) on a free
    port. None of the developer's own settings or saved sign-in leak in."""
    folder = tmp_path_factory.mktemp("clinic")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "OUTREACH_"))}
    env = {**base, "OUTREACH_DATABASE_URL": f"sqlite:///{folder}/outreach.db",
           "OUTREACH_TOKEN_FILE": str(folder / "token"), "OUTREACH_LOG_LEVEL": "WARNING",
           "OUTREACH_INSECURE_DEV_NO_SIGNATURES": "true", "COLUMNS": "200"}
    setup = Clinic("", env, folder)
    made = setup.outreach("users", "create-admin", "--email", ADMIN_EMAIL, "--name",
                          "Ada Admin", "--password-stdin", stdin=ADMIN_PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    assert "created administrator admin@clinic.example" in made.stdout
    assert ADMIN_PASSWORD not in made.stdout + made.stderr
    with serving(env, folder) as url:
        yield Clinic(url, env, folder)


def test_an_administrator_sets_up_the_api_and_a_campaigns_user_stays_within_their_role(
        clinic: Clinic) -> None:
    # The administrator signs in from a browser: a session cookie and its CSRF token.
    browser = clinic.client()
    signed_in = browser.post("/auth/login", json={"email": ADMIN_EMAIL,
                                                  "password": ADMIN_PASSWORD})
    assert signed_in.status_code == 200, signed_in.text
    assert "httponly" in signed_in.headers["set-cookie"].lower()
    csrf = signed_in.json()["csrf_token"]

    # A change made with the cookie alone (a forged cross-site form) is refused.
    forged = browser.post("/auth/tokens", json={"name": "scripts"})
    assert forged.status_code == 403
    assert forged.headers["content-type"] == PROBLEM
    assert forged.json()["code"] == "csrf_refused"

    # With the CSRF token, the session gives a bearer token for scripts.
    issued = browser.post("/auth/tokens", json={"name": "scripts", "days": 30},
                          headers={"X-CSRF-Token": csrf})
    assert issued.status_code == 201, issued.text
    admin = clinic.client(issued.json()["token"])
    assert admin.get("/me").json()["email"] == ADMIN_EMAIL

    # The practice's files go in as multipart uploads; a retry with the same
    # Idempotency-Key answers the first import instead of importing again.
    assert upload(admin, "providers", PROVIDERS).status_code == 201
    first = upload(admin, "patients", PATIENTS, key="patients-2026-12-06")
    summary = first.json()
    assert first.status_code == 201, first.text
    assert (summary["accepted"], summary["new"], summary["rejected"]) == (4, 4, 1)
    assert summary["rejections"] == [{"line": 6, "reason": "last name is missing"}]
    retried = upload(admin, "patients", PATIENTS, key="patients-2026-12-06")
    assert retried.headers.get("idempotent-replayed") == "true"
    assert retried.json()["import_id"] == summary["import_id"]
    assert admin.get("/lists").json()["total"] == 4

    # A colleague who may run campaigns and nothing else.
    made = admin.post("/users", json={"email": CAM_EMAIL, "name": "Cam Porter",
                                      "password": CAM_PASSWORD, "roles": ["campaigns"],
                                      "groups": ["All Subscribers"]})
    assert made.status_code == 201, made.text
    assert made.json()["roles"] == ["campaigns"]

    # They sign in, take a token, and make and activate a text campaign.
    cam_browser = clinic.client()
    cam_csrf = cam_browser.post("/auth/login", json={"email": CAM_EMAIL,
                                                     "password": CAM_PASSWORD}).json()
    cam_token = cam_browser.post("/auth/tokens", json={"name": "campaign scripts"},
                                 headers={"X-CSRF-Token": cam_csrf["csrf_token"]})
    assert cam_token.status_code == 201, cam_token.text
    cam = clinic.client(cam_token.json()["token"])
    created = cam.post("/campaigns", json={
        "name": "Flu shots December", "channel": "text", "body": BODY,
        "help_number": "(312) 555-0199", "patients": ["P001", "P002", "P003"]})
    assert created.status_code == 201, created.text
    campaign = created.json()
    assert (campaign["status"], campaign["to_contact"]) == ("Inactive", 3)
    assert campaign["created_by"] == CAM_EMAIL
    activated = cam.post(f"/campaigns/{campaign['campaign_id']}/activate")
    assert activated.status_code == 200, activated.text
    assert activated.json()["status"] == "Pending"  # active: waiting for its slots
    assert len(activated.json()["schedule_preview"]) == 3
    report = cam.get(f"/campaigns/{campaign['campaign_id']}/report").json()
    assert [r["patient_id"] for r in report["items"]] == ["P001", "P002", "P003"]

    # Opt-outs and the audit trail are other roles': refused as problems, and recorded.
    refused = cam.post("/patients/P002/opt-outs", json={"type": "All Text",
                                                        "reason": "asked by phone"})
    assert refused.status_code == 403
    assert refused.headers["content-type"] == PROBLEM
    assert refused.json()["code"] == "access_denied"
    assert "Opt-out management" in refused.json()["detail"]
    assert cam.get("/audit").status_code == 403

    # The administrator sees both users' actions in the audit trail over HTTP …
    trail = admin.get("/audit", params={"page_size": 200}).json()
    done = {(e["username"], e["action"], e["outcome"]) for e in trail["items"]}
    assert {(ADMIN_EMAIL, "imports.run", "allowed"), (ADMIN_EMAIL, "users.create", "allowed"),
            (CAM_EMAIL, "campaign.create", "allowed"),
            (CAM_EMAIL, "campaign.activate", "allowed"),
            (CAM_EMAIL, "opt_outs.add", "denied")} <= done
    theirs = admin.get("/audit", params={"user": CAM_EMAIL, "action": "campaign."}).json()
    assert {e["action"] for e in theirs["items"]} == {"campaign.create", "campaign.activate",
                                                     "campaign.report"}
    assert all(e["via"] == "token" and e["source"] == "127.0.0.1" for e in theirs["items"])

    # … and at the command line, once the command line is signed in as them.
    login = clinic.outreach("login", "--email", ADMIN_EMAIL, "--password-stdin",
                            stdin=ADMIN_PASSWORD + "\n")
    assert login.returncode == 0, login.stderr
    assert (clinic.folder / "token").stat().st_mode & 0o077 == 0
    listed = clinic.outreach("audit", "--json", "--page-size", "200")
    assert listed.returncode == 0, listed.stderr
    entries = json.loads(listed.stdout)["items"]
    cli_done = {(e["username"], e["action"], e["outcome"]) for e in entries}
    assert {(ADMIN_EMAIL, "imports.run", "allowed"), (CAM_EMAIL, "campaign.activate", "allowed"),
            (CAM_EMAIL, "opt_outs.add", "denied"), (ADMIN_EMAIL, "audit.read", "allowed")
            } <= cli_done

    # A new password, set by the administrator, ends the colleague's token and session.
    assert cam.get("/me").status_code == 200
    changed = admin.post(f"/users/{CAM_EMAIL}/password", json={"password": "Brisk-Walrus-88"})
    assert changed.status_code == 204, changed.text
    ended = cam.get("/me")
    assert ended.status_code == 401
    assert ended.headers["www-authenticate"] == "Bearer"
    assert ended.json()["code"] == "not_signed_in"
    assert cam_browser.get("/me").status_code == 401
    again = clinic.client().post("/auth/login", json={"email": CAM_EMAIL,
                                                      "password": "Brisk-Walrus-88"})
    assert again.status_code == 200


def test_five_wrong_passwords_lock_the_account_even_against_the_right_one(
        clinic: Clinic) -> None:
    admin = clinic.client(admin_token(clinic))
    email, password = "olu@clinic.example", "Green-Kettle-58"
    made = admin.post("/users", json={"email": email, "name": "Olu Reyes",
                                      "password": password, "roles": ["opt_outs"]})
    assert made.status_code == 201, made.text
    anyone = clinic.client()
    assert anyone.post("/auth/login", json={"email": email,
                                            "password": password}).status_code == 200

    wrong = [anyone.post("/auth/login", json={"email": email, "password": f"guess-{n}"})
             for n in range(5)]
    assert [r.status_code for r in wrong] == [401] * 5
    assert all(r.headers["content-type"] == PROBLEM for r in wrong)
    assert "locked" in wrong[-1].json()["detail"]

    sixth = anyone.post("/auth/login", json={"email": email, "password": password})
    assert sixth.status_code == 401
    assert sixth.headers["content-type"] == PROBLEM
    assert "locked" in sixth.json()["detail"]
    assert password not in sixth.text and "set-cookie" not in sixth.headers
    assert admin.get(f"/users/{email}").json()["locked_until"] is not None
    locked = admin.get("/audit", params={"user": email, "action": "auth.login",
                                         "outcome": "failed"}).json()
    assert locked["total"] >= 6


# -- helpers ----------------------------------------------------------------------------------

def upload(client: httpx.Client, kind: str, text: str, key: str | None = None
           ) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(f"/imports/{kind}", headers=headers,
                       files={"file": (f"{kind}.csv", text.encode(), "text/csv")})


def admin_token(clinic: Clinic) -> str:
    browser = clinic.client()
    csrf = browser.post("/auth/login", json={"email": ADMIN_EMAIL,
                                             "password": ADMIN_PASSWORD}).json()["csrf_token"]
    issued = browser.post("/auth/tokens", json={"name": "lockout test"},
                          headers={"X-CSRF-Token": csrf})
    assert issued.status_code == 201, issued.text
    token: Any = issued.json()["token"]
    return str(token)


@contextmanager
def serving(env: dict[str, str], folder: Path) -> Iterator[str]:
    """`outreach serve` on a free port until the block ends; yields its base URL."""
    port = free_port()
    stderr_path = folder / "serve.stderr"
    with stderr_path.open("wb") as stderr:
        server = subprocess.Popen([str(OUTREACH), "serve", "--port", str(port)], env=env,
                                  cwd=folder, stdout=subprocess.DEVNULL, stderr=stderr)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while not answers(url + "/healthz"):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"serve did not start:\n{stderr_path.read_text()}")
                time.sleep(0.1)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=30)
    # Nothing secret or personal reached the server's log.
    log = stderr_path.read_text()
    for secret in (ADMIN_PASSWORD, CAM_PASSWORD, "Lee", "555-0101"):
        assert secret not in log


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
