"""Duplicate status callbacks arriving at the same moment, over real HTTP, on both stacks:
each is answered 2xx and every communication moves on exactly once."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from urllib.parse import quote, urlencode
from uuid import UUID, uuid4

import httpx
import pytest
from twilio.request_validator import RequestValidator

from api.http import create_app
from application.bootstrap import Outreach
from domain.communication import CommStatus, Communication
from tests.fakes.served import serve
from tests.fixtures_app import TUESDAY_9AM

TOKEN = "storm-auth-token"
PUBLIC_URL = "https://outreach.example.org"
CLIENTS = 16
COPIES = 6  # each callback arrives this many times, from different clients at once


def communication_in(o: Outreach, status: CommStatus, campaign_id: UUID, n: int) -> UUID:
    """A text communication whose first attempt is under way (SENDING) or accepted (SENT),
    stored through the domain, as the dispatcher leaves it."""
    comm = Communication(campaign_id=campaign_id, patient_id=f"P{n:04d}", channel="text",
                         sequence=n, due_at=TUESDAY_9AM)
    comm.start_attempt(1, TUESDAY_9AM)
    if status == CommStatus.SENT:
        comm.accept(1, TUESDAY_9AM, f"SM{n:032d}")
    o.store.save(comm)
    return comm.id


def signed_callback(comm_id: UUID, status: str, sid: str) -> tuple[str, bytes, dict[str, str]]:
    path = f"/webhooks/twilio/status?ref={quote(f'{comm_id}:1')}"
    form = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
            "AccountSid": "AC" + "b" * 32, "To": "+13125550100"}
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC_URL + path, form)
    return path, urlencode(form).encode(), {
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}


def storm(url: str, requests: list[tuple[str, bytes, dict[str, str]]]) -> Counter[int]:
    """Send every request once, spread over CLIENTS threads that start together. Counts the
    answers by HTTP status (0: no answer)."""
    answers: Counter[int] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    def client(share: list[tuple[str, bytes, dict[str, str]]]) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            start.wait()
            for path, body, headers in share:
                try:
                    code = http.post(path, content=body, headers=headers).status_code
                except httpx.HTTPError:
                    code = 0  # no answer at all (the server dropped the connection)
                with lock:
                    answers[code] += 1

    threads = [threading.Thread(target=client, args=(requests[i::CLIENTS],))
               for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return answers


def event_names(o: Outreach, comm_id: UUID) -> list[str]:
    return [type(event).__name__ for event in o.store.events.get(comm_id)]


@pytest.fixture
def outreach(make_outreach: Callable[..., Outreach]) -> Outreach:
    return make_outreach()


@pytest.fixture
def served(outreach: Outreach) -> Iterator[str]:
    app = create_app(outreach.inbound, TOKEN, PUBLIC_URL, now=outreach.clock.now)
    with serve(app) as url:
        yield url


def test_a_storm_of_duplicate_status_callbacks_never_errors_and_applies_each_once(
        outreach: Outreach, served: str) -> None:
    # Given texts Twilio accepted, and texts whose dispatcher died before recording that
    campaign_id = uuid4()
    sent = [communication_in(outreach, CommStatus.SENT, campaign_id, n) for n in range(12)]
    sending = [communication_in(outreach, CommStatus.SENDING, campaign_id, n)
               for n in range(12, 24)]
    # When every 'delivered' callback arrives COPIES times at once, and for the ones still
    # Sending a 'sent' callback races its 'delivered' (Twilio does not order them)
    requests = [signed_callback(comm, "delivered", f"SM{i:032d}")
                for i, comm in enumerate(sent + sending) for _ in range(COPIES)]
    requests += [signed_callback(comm, "sent", f"SM{i + 12:032d}")
                 for i, comm in enumerate(sending) for _ in range(COPIES)]
    # (copies of one callback sit next to each other, so different clients send them at once)
    answers = storm(served, requests)
    # Then no callback got a server error: each was taken (204)
    assert answers == Counter({204: len(requests)})
    # And every communication is Delivered, accepted once and delivered once
    for comm in sent:
        assert outreach.store.repository.get(comm).status == CommStatus.DELIVERED
        assert Counter(event_names(outreach, comm))["Delivered"] == 1
    for comm in sending:
        assert outreach.store.repository.get(comm).status == CommStatus.DELIVERED
        names = Counter(event_names(outreach, comm))
        assert (names["Accepted"], names["Delivered"]) == (1, 1), names


def test_a_receipt_that_lost_the_race_is_reapplied_and_can_still_move_it_on(
        outreach: Outreach, served: str) -> None:
    """'sent' and 'delivered' for texts still Sending, many times each, at once: whichever
    saves first, the other is re-read and re-applied, so each text ends Delivered."""
    campaign_id = uuid4()
    comms = [communication_in(outreach, CommStatus.SENDING, campaign_id, n) for n in range(4)]
    requests = [signed_callback(comm, status, f"SM{n:032d}")
                for n, comm in enumerate(comms)
                for _ in range(CLIENTS // 2) for status in ("sent", "delivered")]
    answers = storm(served, requests)
    assert answers == Counter({204: len(requests)})
    for comm in comms:
        assert outreach.store.repository.get(comm).status == CommStatus.DELIVERED
        assert event_names(outreach, comm) == [
            "Planned", "AttemptStarted", "Accepted", "Delivered"]
