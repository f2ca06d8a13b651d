"""SES over real HTTP for tests: moto's server, plus two tiny servers for failure modes.

MotoSes starts moto's ThreadedMotoServer on a free loopback port; boto3 reaches it through
`endpoint_url` with dummy credentials (CREDENTIALS). What moto received is read back over
HTTP from its `GET /moto-api/data.json` (the `ses` → `RawMessage` models: id, source,
destinations, raw_data), the same state dump moto's dashboard uses.

    with MotoSes() as ses:
        ses.verify_sender("noreply@clinic.example")
        gateway = SesEmailGateway(region=ses.region, endpoint_url=ses.endpoint_url, ...,
                                  **ses.credentials)
        ...
        [raw] = ses.raw_messages()

SesErrorServer answers every request with SES v2's JSON error shape (restJson: status,
`x-amzn-ErrorType` header, `{"message": ...}` body); SilentServer accepts connections,
reads the request and never answers (a read timeout after the request was sent).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing"}


class MotoSes:
    def __init__(self, region: str = REGION) -> None:
        self.region = region
        self.credentials = dict(CREDENTIALS)
        self._server: ThreadedMotoServer | None = None
        self.endpoint_url = ""

    def start(self) -> MotoSes:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        self.reset()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> MotoSes:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def client(self, service: str = "sesv2") -> Any:
        return boto3.session.Session(
            aws_access_key_id=CREDENTIALS["access_key_id"],
            aws_secret_access_key=CREDENTIALS["secret_access_key"],
            region_name=self.region,
        ).client(service, endpoint_url=self.endpoint_url)

    def reset(self) -> None:
        """Forget every identity and message (moto's state is per process)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=5) as answer:
            answer.read()

    def verify_sender(self, address: str) -> None:
        """moto verifies an identity at creation; real SES would send a link."""
        self.client().create_email_identity(EmailIdentity=address)

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/data.json",
                                    timeout=5) as answer:
            data: dict[str, Any] = json.load(answer)
        return data

    def raw_messages(self) -> list[dict[str, Any]]:
        """[{"id", "source", "destinations", "raw_data"}] for every Raw send moto took."""
        return list(self.state().get("ses", {}).get("RawMessage", []))


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class SesErrorServer:
    """Answers everything with one SES error; `.requests` counts what arrived."""

    def __init__(self, status: int = 429, code: str = "TooManyRequestsException",
                 message: str = "Maximum sending rate exceeded.") -> None:
        owner = self
        self.requests = 0

        class Handler(_Quiet):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                owner.requests += 1
                body = json.dumps({"message": message}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("x-amzn-ErrorType", f"{code}:http://internal.amazon.com/")
                self.send_header("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET = _answer  # noqa: N815

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.endpoint_url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def __enter__(self) -> SesErrorServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()


class SilentServer:
    """Takes the connection and the request, then never answers."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self.endpoint_url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.received = threading.Event()
        self.connections = 0
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._held.append(conn)
            self.connections += 1
            conn.settimeout(5)
            try:
                if conn.recv(65536):
                    self.received.set()
            except OSError:
                pass

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._sock.close()
        for conn in self._held:
            conn.close()


def closed_port_url() -> str:
    """An http URL nobody listens on (bound, then released)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"
