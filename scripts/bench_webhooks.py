"""The webhooks benchmark's moving parts (scripts/benchmarks.py, section "webhooks"):
`outreach serve` in its own process, signed Twilio status callbacks, and a load of
WEBHOOK_CLIENTS concurrent keep-alive clients that counts every answer that is not 2xx."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlencode
from uuid import UUID

import httpx
from twilio.request_validator import RequestValidator

from application.settings import Settings
from application.store import open_event_store

Request = tuple[str, bytes, dict[str, str]]  # path, form body (empty: a GET), headers

WEBHOOK_CLIENTS = 16
WEBHOOK_TOKEN = "benchmark-twilio-auth-token"
WEBHOOK_PUBLIC_URL = "https://outreach.example.org"
# Per text: Twilio's 'sent' twice and 'delivered' three times, as retries and at-least-once
# delivery produce them; neighbours in the list go to different clients at the same moment.
WEBHOOK_STATUSES = ("sent", "delivered", "sent", "delivered", "delivered")
WEBHOOK_TIME_LIMIT_S = 300.0  # per load; what is not sent by then is counted as an error


def status_callback(comm_id: UUID, status: str) -> Request:
    """A callback as Twilio sends it to our StatusCallback URL, signed for the public URL."""
    path = f"/webhooks/twilio/status?ref={quote(f'{comm_id}:1')}"
    sid = "SM" + comm_id.hex
    form = {"AccountSid": "AC" + "0" * 32, "MessageSid": sid, "SmsSid": sid,
            "MessageStatus": status, "SmsStatus": status, "To": "+15125550100"}
    signature = RequestValidator(WEBHOOK_TOKEN).compute_signature(WEBHOOK_PUBLIC_URL + path,
                                                                  form)
    return path, urlencode(form).encode(), {
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}


@contextmanager
def outreach_serve(database_url: str, log: Path) -> Iterator[str]:
    """`outreach serve` in its own process on a free 127.0.0.1 port (signatures checked,
    simulator gateway); yields its base URL, stops it on exit."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWILIO_")}
    env.update(OUTREACH_DATABASE_URL=database_url, TWILIO_AUTH_TOKEN=WEBHOOK_TOKEN,
               OUTREACH_PUBLIC_URL=WEBHOOK_PUBLIC_URL, OUTREACH_LOG_LEVEL="WARNING",
               OUTREACH_INSECURE_DEV_NO_SIGNATURES="false")
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-c", "from api.cli import main; main()", "serve", "--host",
             "127.0.0.1", "--port", str(port)], env=env, stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"outreach serve did not start: see {log}")
                time.sleep(0.1)
            yield base
        finally:
            server.terminate()
            server.wait(timeout=30)


def client_load(base: str, requests: list[Request]) -> tuple[float, int]:
    """Seconds for WEBHOOK_CLIENTS threads (one keep-alive connection each) to send every
    request (a body: POST, else GET), and how many got no 2xx answer."""
    errors = [0] * WEBHOOK_CLIENTS
    start = threading.Barrier(WEBHOOK_CLIENTS + 1)
    deadline = [0.0]

    def client(n: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            start.wait()
            for path, body, headers in requests[n::WEBHOOK_CLIENTS]:
                if time.monotonic() > deadline[0]:
                    errors[n] += 1
                    continue
                try:
                    answer = (http.post(path, content=body, headers=headers) if body
                              else http.get(path))
                    errors[n] += not answer.is_success
                except httpx.HTTPError:
                    errors[n] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(WEBHOOK_CLIENTS)]
    for thread in threads:
        thread.start()
    deadline[0] = time.monotonic() + WEBHOOK_TIME_LIMIT_S
    started = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, sum(errors)


def delivered_once(database_url: str, comm_ids: list[UUID]) -> int:
    """How many of the texts are Delivered with exactly one Accepted and one Delivered."""
    store = open_event_store(Settings(database_url=database_url))
    try:
        done = 0
        for comm_id in comm_ids:
            names = [type(e).__name__ for e in store.events.get(comm_id)]
            done += (names.count("Accepted") == 1 and names.count("Delivered") == 1
                     and names[-1] == "Delivered")
        return done
    finally:
        store.close()
