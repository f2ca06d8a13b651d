"""SES's events can reach `outreach serve` before the dispatcher has stored the outcomes of
its batch (SNS is quick; a batch under the quota takes seconds). The dispatcher's save then
meets a communication already moved on: the outcomes of the rest of its batch must still be
recorded, and nothing sent again."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

from application.clock import SimulatedClock
from domain.channels import Channel
from domain.email import EmailEvent, EmailEventKind, EmailState
from gateways.email import OutboundEmail, SendResult
from gateways.simulator_email import SimulatorEmailGateway
from tests.fixtures_app import TUESDAY_9AM, import_patients, patient_row
from workers.runner import EmbeddedRunner


class QuickSnsGateway(SimulatorEmailGateway):
    """Takes each email, and for the first one SES's Send event is applied at once, while
    the dispatcher is still calling for the rest of its batch (as `serve` would)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.apply = None
        self.raced = 0

    def send(self, message: OutboundEmail) -> SendResult:
        result = super().send(message)
        if self.apply is not None and not self.raced:
            self.raced += 1
            self.apply(EmailEvent(f"sns-{uuid4()}", EmailEventKind.SEND, result.provider_ref,
                                  message.reference, self._now()))
        return result

    def drain_events(self) -> list[EmailEvent]:
        return []  # the other events come much later: the dispatcher's record must stand


def test_an_early_send_event_does_not_cost_the_batch_its_outcomes(make_outreach, tmp_path):
    clock = SimulatedClock(TUESDAY_9AM + timedelta(hours=2))  # inside the email window
    gateway = QuickSnsGateway(now=clock.now)
    o = make_outreach(clock=clock, email_gateway=gateway, rate_cap_per_hour=100_000,
                      rate_burst=100_000)
    gateway.apply = o.email.on_email_event
    ids = [f"E{n}" for n in range(6)]
    import_patients(o, tmp_path, [patient_row(pid, None, email=f"p{pid}@example.org")
                                  for pid in ids])
    for pid in ids:  # introduced long ago: campaign emails
        state = EmailState(patient_id=pid)
        state.introduction_sent(TUESDAY_9AM - timedelta(days=5), uuid4())
        o.store.save(state)
    cid = o.campaigns.create(name="Race", channel=Channel.EMAIL, subject="Hello",
                             body="<p>Hi {{ first_name }}</p>", audience=ids, active=True)
    # When one dispatch pass runs, all six due (one batch)
    clock.advance_to(clock.now() + timedelta(minutes=1))
    runner = EmbeddedRunner(o)
    runner.step()
    o.catch_up()
    # Then the raced email and every other one of the batch is recorded Sent (or
    # Delivered), with the provider's message id; none is left "Sending"
    report = o.campaigns.report(cid)
    assert gateway.raced == 1
    assert sorted(r.status for r in report) == ["Sent"] * 6
    assert all(r.last_outcome == "accepted" for r in report)
    # And each patient got exactly one email
    assert sorted(m.message.to for m in gateway.sent) == sorted(
        f"p{pid}@example.org" for pid in ids)
