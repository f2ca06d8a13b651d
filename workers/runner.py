"""Running the workers: all in one process on the embedded bus (the default), under the real
clock (APScheduler drives the loop) or a simulated one that jumps over idle time."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from application.bootstrap import Outreach
from application.clock import SimulatedClock
from bus.intents import InMemoryIntentBus, IntentConsumer, IntentPublisher
from domain.channels import Channel
from domain.follow_ups import FOLLOW_UPS_CAMPAIGN_ID
from projections import runner as follower
from projections.campaigns import CampaignProjection
from workers.dispatcher import Dispatcher, DispatchStats
from workers.metrics import Metrics
from workers.provider_pace import ProviderPace
from workers.resilience import Guard, Lifeline
from workers.scheduler import Scheduler
from workers.senders import ChannelSender, EmailSender, TextSender
from workers.senders_phone import PhoneSender

log = structlog.get_logger("runner")

#: The simulated clock's bounded step: every slot due within this much simulated time (and
#: at most STEP_SLOTS of them) is sent at its own instant, exactly as stepping slot by slot
#: would, while what only matters between steps (settings, the projections the workers do
#: not read, the progress shown) is done once per step. Any length gives the same sends;
#: this one keeps progress and settings changes a few simulated minutes fresh.
STEP = timedelta(minutes=5)
STEP_SLOTS = 1000


def make_senders(outreach: Outreach) -> dict[Channel, ChannelSender]:
    """Every channel this process can send on, with its gateway (workers.senders)."""
    o = outreach
    calendar = o.settings.calendar
    rate = o.email_gateway.max_send_rate()
    pace = ProviderPace(o.db, "email", rate) if rate else None
    calls = ProviderPace(o.db, "twilio-voice", o.settings.calls_per_second)
    return {
        Channel.TEXT: TextSender(o.gateway, o.store, o.contact_keys, calendar),
        Channel.PHONE: PhoneSender(o.voice_gateway, o.store, calendar, calls),
        Channel.EMAIL: EmailSender(o.email_gateway, o.store, o.contact_keys, calendar,
                                   o.email_composition, pace),
    }


def apply_simulated_email_events(outreach: Outreach) -> int:
    """The email simulator's events (delivered, bounced, complained), applied as SNS would
    deliver SES's to `outreach serve`. Nothing to do with a real provider."""
    drain_events = getattr(outreach.email_gateway, "drain_events", None)
    if drain_events is None:
        return 0
    events = drain_events()
    for event in events:
        outreach.email.on_email_event(event)
    return len(events)


def apply_simulated_call_events(outreach: Outreach) -> int:
    """The voice simulator's callbacks (status, answering machine, keys pressed), applied as
    `outreach serve` applies Twilio's. Nothing to do with a real provider."""
    from gateways.twilio_voice_webhooks import AmdResult, CallStatus, GatherResult

    drain_events = getattr(outreach.voice_gateway, "drain_events", None)
    if drain_events is None:
        return 0
    events = drain_events()
    for event in events:
        if isinstance(event, CallStatus):
            outreach.voice.on_status(event)
        elif isinstance(event, AmdResult):
            outreach.voice.on_amd(event)
        elif isinstance(event, GatherResult):
            outreach.voice.on_gather(event)
    return len(events)


def make_dispatcher(outreach: Outreach, metrics: Metrics | None = None) -> Dispatcher:
    return Dispatcher(
        store=outreach.store, directory=outreach.directory, senders=make_senders(outreach),
        limiter=outreach.limiter, calendar=outreach.settings.calendar, clock=outreach.clock,
        contact_keys=outreach.contact_keys,
        stale_attempt=timedelta(seconds=outreach.settings.stale_attempt_seconds),
        metrics=metrics,
    )


def follow_settings(outreach: Outreach, dispatcher: Dispatcher | None,
                    every_s: float = 0.0) -> bool:
    """Apply organisation settings an administrator changed (application/organisation.py)
    without a restart. The services read the settings object, changed in place; the
    dispatcher and its senders were handed the calendar when built, so they are given the
    new one here (whoever applied the change: a catch-up in between may have)."""
    changed = outreach.follow_settings(every_s)
    calendar = outreach.settings.calendar  # cached: the same object until a change
    if dispatcher is not None and dispatcher.calendar is not calendar:
        changed = True
        dispatcher.calendar = calendar
        for sender in dispatcher.senders.values():
            if isinstance(sender, TextSender | EmailSender | PhoneSender):
                sender.calendar = calendar
    return changed


def make_scheduler(outreach: Outreach, publisher: IntentPublisher,
                   metrics: Metrics | None = None) -> Scheduler:
    settings = outreach.settings
    return Scheduler(outreach.db, outreach.store, outreach.directory, publisher, outreach.clock,
                     outreach.contact_keys, limiter=outreach.limiter,
                     reissue_after=timedelta(seconds=settings.reissue_after_seconds),
                     receipt_grace=timedelta(seconds=settings.receipt_grace_seconds),
                     metrics=metrics)


def drain(dispatcher: Dispatcher, consumer: IntentConsumer, stats: DispatchStats,
          max_batches: int | None = None) -> int:
    """Dispatch until the consumer has nothing more; commit after each stored batch."""
    batches = 0
    while max_batches is None or batches < max_batches:
        intents = consumer.poll(max_records=500, timeout_s=0.0)
        if not intents:
            consumer.commit()
            break
        stats.add(dispatcher.handle(intents))
        consumer.commit()
        batches += 1
    return batches


@dataclass
class Progress:
    """Where the campaigns this runner drives stand (not every campaign in the database:
    finished ones from earlier runs would make a new run look almost done)."""
    to_contact: int
    completed: int
    now: datetime
    campaigns: int = 0


class EmbeddedRunner:
    """Projections, scheduler and dispatcher in one process, sharing the in-memory bus."""

    def __init__(self, outreach: Outreach, dispatch: bool = True,
                 publisher: IntentPublisher | None = None,
                 metrics: Metrics | None = None) -> None:
        self.outreach = outreach
        self.bus = InMemoryIntentBus()
        #: the process's metrics (workers.metrics), shared by its scheduler and dispatcher
        self.metrics = metrics or Metrics()
        self.scheduler = make_scheduler(outreach, publisher or self.bus, self.metrics)
        self.dispatcher = make_dispatcher(outreach, self.metrics) if dispatch else None
        self.stats = DispatchStats()
        # The campaigns this runner drives: every one seen sending (Pending) while it ran,
        # kept once it completes or is stopped.
        self.campaign_ids: set[str] = set()
        #: the read model the scheduler and dispatcher read between slots of one step
        self._campaigns_projection = next(
            (p for p in outreach.projections if isinstance(p, CampaignProjection)), None)
        self._campaigns_head: int | None = None

    def step(self) -> None:
        # Every step (at most once a second in real time): one indexed read.
        follow_settings(self.outreach, self.dispatcher)
        self._slot(self.outreach.catch_up)

    def slot_step(self) -> None:
        """One slot inside a bounded step: the same work as `step`, in the same order, but
        only the campaigns read model is caught up between slots — the scheduler reads it,
        and the dispatcher reads the event store and the patients (changed by imports only,
        never by sending; the step's full catch-up takes any). Provider events (simulated
        email and calls) may touch other read models: after them, everything catches up."""
        self._slot(self._catch_up_campaigns)

    def _slot(self, catch_up: Callable[[], object]) -> None:
        o = self.outreach
        catch_up()
        self._note_sending_campaigns()
        self.scheduler.tick()
        # Letters are files, made for a whole campaign at once on its start day.
        if o.letters.make_due():
            o.catch_up()
        if self.dispatcher is not None:
            drain(self.dispatcher, self.bus, self.stats)
        if self._apply_simulated_events():
            o.catch_up()
        else:
            catch_up()
        if self.scheduler.complete_finished():
            catch_up()

    def _catch_up_campaigns(self) -> None:
        o, projection = self.outreach, self._campaigns_projection
        if projection is None:
            o.catch_up()
            return
        head = o.store.recorder.max_notification_id()
        if head is None or head != self._campaigns_head:
            follower.catch_up(o.store, o.db, [projection])
            self._campaigns_head = head

    def _apply_simulated_events(self) -> int:
        return (apply_simulated_email_events(self.outreach)
                + apply_simulated_call_events(self.outreach))

    def _note_sending_campaigns(self) -> None:
        # Before the scheduler's tick: a small campaign may be sent and completed within
        # one step, and must still count as run.
        self.campaign_ids.update(str(r[0]) for r in self.outreach.db.fetchall(
            "SELECT campaign_id FROM campaigns WHERE status = 'Pending'"
            " AND campaign_id <> ?", (str(FOLLOW_UPS_CAMPAIGN_ID),)))  # not a campaign

    def progress(self) -> Progress:
        now = self.outreach.clock.now()
        if not self.campaign_ids:
            return Progress(0, 0, now)
        ids = sorted(self.campaign_ids)
        # The projection's counts: to be contacted, and done (no longer open).
        row = self.outreach.db.fetchone(
            "SELECT COALESCE(SUM(total), 0), COALESCE(SUM(total - open), 0)"
            f" FROM campaign_progress WHERE campaign_id IN ({', '.join('?' * len(ids))})",
            ids)
        total, done = (int(row[0]), int(row[1])) if row else (0, 0)
        return Progress(total, done, now, len(ids))

    def run_simulated(self, until: datetime,
                      on_step: Callable[[Progress], None] | None = None,
                      step: timedelta = STEP) -> Progress:
        """Run the workers under the simulated clock until `until` or nothing is left due.
        Time jumps from one due instant to the next, in bounded steps of at most `step`
        (see STEP; a zero step: every slot a full step, the plain slot-by-slot run) —
        the instants visited, and so every send and its time, are the same either way.
        `on_step` is shown the progress after each bounded step."""
        clock = self.outreach.clock
        if not isinstance(clock, SimulatedClock):
            raise TypeError("run_simulated needs the simulated clock")
        started, slots, full = clock.now(), 0, True
        while True:
            ran_full = full
            if full:
                self.step()
                started, slots = clock.now(), 0
            else:
                self.slot_step()
                slots += 1
            now = clock.now()
            upcoming = self.scheduler.next_due()
            last = upcoming is None or upcoming > until or now >= until
            # Something due now but not taken (its intent is still in flight) must not make
            # the simulation spin: step a second.
            target = now + timedelta(seconds=1) if upcoming is None or upcoming <= now \
                else upcoming
            full = target - started >= step or slots + 1 >= STEP_SLOTS
            if on_step and (full or last):
                on_step(self.progress())
            if last:
                break
            clock.advance_to(target)
        if not ran_full:
            self.outreach.catch_up()  # the read models the slots left behind
        return self.progress()

    def run_realtime(self, stop: threading.Event | None = None, interval_s: float = 1.0, *,
                     lifeline: Lifeline | None = None,
                     on_outage: Callable[[str], None] | None = None) -> None:
        """Step every `interval_s` until `stop`. Through an outage the steps back off (one
        log line); a step failing otherwise, again and again, stops the loop and raises
        ComponentFailed (the process exits non-zero) instead of being swallowed forever."""
        from apscheduler.schedulers.background import BackgroundScheduler

        self._lifeline = lifeline or Lifeline(stop or threading.Event())
        stop = self._lifeline.stop
        self._guard = Guard("scheduler", health=self._lifeline.health, on_outage=on_outage)
        self._retry_at: datetime | None = None
        scheduler = BackgroundScheduler(timezone="UTC")
        scheduler.add_job(self._safe_step, "interval", seconds=interval_s, max_instances=1,
                          coalesce=True, next_run_time=self.outreach.clock.now())
        scheduler.start()
        log.info("running", mode="embedded", interval_s=interval_s)
        try:
            stop.wait()
        finally:
            scheduler.shutdown(wait=True)
        self._lifeline.check()

    def _safe_step(self) -> None:
        """One APScheduler tick: skipped while backing off after a failure."""
        clock = self.outreach.clock
        if self._retry_at is not None and clock.now() < self._retry_at:
            return
        try:
            self.step()
        except Exception as exc:  # noqa: BLE001 - the guard tells an outage from a bug
            try:
                delay = self._guard.failed(exc)
            except Exception as fatal:  # noqa: BLE001 - given up: the process must end
                self._lifeline.fail("scheduler", fatal)
                return
            self._retry_at = clock.now() + timedelta(seconds=delay)
            return
        self._retry_at = None
        self._guard.succeeded()
