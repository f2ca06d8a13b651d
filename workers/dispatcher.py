"""The dispatcher: send-intents → re-check every rule → provider call → outcome stored.

Small steps, in the words of the rules:
1. decode: load the batch's communications and campaigns (one query each: the event
   store's get_many); an intent for an attempt already settled is a harmless
   redelivery and is dropped (idempotent by communication id + attempt number);
2. decide, just before the call: campaign still active? patient known, with a valid mobile?
   not opted out (STOP-ed number or staff opt-out)? window open? rate cap not reached?
   The senders read the opt-outs of the whole batch in one query when it begins (see
   workers.senders.BatchReads: still from the store, after the intents arrived and before
   anything is recorded or sent; nothing of it outlives the batch);
3. record "attempt started" for the whole batch in one save — before any provider call, so a
   crash can never make us forget that a message may have gone;
4. call the gateway (which never raises for provider trouble);
5. record the outcomes in one save; the caller commits the bus offsets only after that.
A communication found "attempt started" without an outcome (its dispatcher died, or the
provider's answer was lost: a timeout after sending, a reset connection) is reconciled by
asking the provider whether the message went, before anything is sent again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import structlog
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from application.ports import PatientContact, PatientDirectory
from application.store import EventStore
from bus.intents import SendIntent
from domain.calendar import SendingCalendar
from domain.campaign import Campaign
from domain.channels import Channel
from domain.clock import Clock
from domain.communication import CommStatus, Communication, SkipReason
from domain.email import MESSAGE
from domain.pacing import spacing
from domain.preferences import ContactKeys
from domain.retry import POLICIES, FailureKind
from gateways.sms import SendResult
from workers.metrics import FAILED, SENT, UNKNOWN, Metrics
from workers.ratelimit import RateLimiter
from workers.senders import ChannelSender, Skip, Wait, valid_mobile

__all__ = ["DispatchStats", "Dispatcher", "valid_mobile"]

log = structlog.get_logger("dispatcher")

# Saving one outcome again after a conflict: each conflict means the provider's event moved
# the communication on, after which there is nothing left to record; a few tries suffice.
OUTCOME_SAVE_ATTEMPTS = 5



@dataclass
class DispatchStats:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    deferred: int = 0
    duplicates: int = 0
    reconciled: int = 0
    cancelled: int = 0
    unknown: int = 0  # provider calls whose outcome was lost: reconciled before any retry

    def add(self, other: DispatchStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class _Job:
    intent: SendIntent
    comm: Communication
    contact: PatientContact
    campaign: Campaign
    sender: ChannelSender
    purpose: str = MESSAGE
    message: Any = None  # what the sender composed for its gateway
    reconcile: bool = False
    result: SendResult | None = field(default=None)


class Dispatcher:
    def __init__(
        self,
        store: EventStore,
        directory: PatientDirectory,
        senders: Mapping[Channel, ChannelSender],
        limiter: RateLimiter,
        calendar: SendingCalendar,
        clock: Clock,
        contact_keys: ContactKeys,
        stale_attempt: timedelta = timedelta(seconds=60),
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        #: the process's metrics (workers.metrics); a private registry when none is given
        self.metrics = metrics or Metrics()
        self.contact_keys = contact_keys  # a number's opt-out id is keyed with its secret
        self.directory = directory
        #: each channel's own rules and gateway (workers.senders); a channel without one
        #: (not configured in this process) is left alone, its intents redelivered
        self.senders = dict(senders)
        self.limiter = limiter
        self.calendar = calendar
        self.clock = clock
        #: an attempt started this long ago without an outcome belongs to a dead dispatcher
        self.stale_attempt = stale_attempt

    # -- entry point ---------------------------------------------------------------------
    def handle(self, intents: Sequence[SendIntent]) -> DispatchStats:
        """Process one batch. Raises only for infrastructure failure (then nothing is
        committed on the bus and the batch comes back)."""
        try:
            stats = self._handle(intents)
        except IntegrityError:
            # Another dispatcher touched one of these communications (a rebalance overlap).
            # Nothing of this batch was saved; redo it one intent at a time on fresh state.
            stats = DispatchStats()
            for intent in intents:
                try:
                    stats.add(self._handle([intent]))
                except IntegrityError:
                    stats.duplicates += 1
        # Counted once handled: a batch that failed (an outage) comes back and counts then.
        self.metrics.intents_consumed.inc(len(intents))
        return stats

    def _handle(self, intents: Sequence[SendIntent]) -> DispatchStats:
        stats = DispatchStats()
        now = self.clock.now()
        comms = self._load_comms(intents, stats)
        if not comms:
            return stats
        campaigns = self._load(Campaign, {c.campaign_id for _, c in comms})
        contacts = self.directory.contacts([c.patient_id for _, c in comms])
        changed: dict[UUID, Any] = {}
        ready: list[_Job] = []
        by_channel: dict[str, list[PatientContact]] = {}
        for _, comm in comms:
            contact = contacts.get(comm.patient_id)
            if contact is not None:
                by_channel.setdefault(str(comm.channel), []).append(contact)
        try:
            # Read here, where each decision used to read for itself: after the intents
            # arrived, with no I/O between this read and the decisions below.
            for channel, sender in self.senders.items():
                sender.begin_batch(by_channel.get(str(channel), []))
            for intent, comm in comms:
                campaign = campaigns.get(comm.campaign_id)
                job = self._decide(intent, comm, campaign, contacts.get(comm.patient_id),
                                   now, stats, changed)
                if job:
                    ready.append(job)
        finally:
            for sender in self.senders.values():
                sender.end_batch()  # an opt-out read for this batch is never reused
        ready = self._apply_rate_cap(ready, now, stats, changed)
        for job in ready:
            if not job.reconcile:
                job.comm.start_attempt(job.intent.attempt, now, job.purpose,
                                       job.sender.address_key(job.message))
                changed[job.comm.id] = job.comm
        if changed:
            self.store.save(*changed.values())  # "attempt started" is durable before any call
        outcomes: dict[UUID, Any] = {}
        settled: list[tuple[_Job, datetime]] = []
        slots = self._provider_slots(ready, now)
        for job in ready:
            self._wait_for(slots.get(id(job)))
            self._call(job, now, stats)
            if job.result is None:
                continue  # could not learn whether it went: leave it for a later pass
            at = self.clock.now()
            self._record(job, at, stats)
            settled.append((job, at))
            outcomes[job.comm.id] = job.comm
            for other in job.sender.after_outcome(job.comm, at):
                outcomes[other.id] = other
        if outcomes:
            try:
                self.store.save(*outcomes.values())
            except IntegrityError:
                # The provider's own event (an SES Send, a Twilio status callback) reached
                # `serve` before this save and moved a communication on. The calls are
                # made: never redo them; record each outcome on its own, on fresh state.
                self._save_outcomes_one_by_one(settled)
        return stats

    def _save_outcomes_one_by_one(self, settled: list[tuple[_Job, datetime]]) -> None:
        for job, at in settled:
            for _ in range(OUTCOME_SAVE_ATTEMPTS):
                try:
                    fresh: Communication = self.store.repository.get(job.comm.id)
                except AggregateNotFoundError:
                    break
                if not (fresh.awaiting_outcome and fresh.attempts == job.intent.attempt):
                    break  # already settled by the provider's event: nothing to add
                job.comm = fresh
                self._record(job, at, DispatchStats(), count=False)
                try:
                    self.store.save(fresh, *job.sender.after_outcome(fresh, at))
                    break
                except IntegrityError:
                    continue  # moved on again under us: read it once more

    # -- steps ---------------------------------------------------------------------------
    def _load_comms(
        self, intents: Sequence[SendIntent], stats: DispatchStats
    ) -> list[tuple[SendIntent, Communication]]:
        found = self._load(Communication, {i.communication_id for i in intents})
        result, seen = [], set()
        for intent in intents:
            comm = found.get(intent.communication_id)
            key = (intent.communication_id, intent.attempt)
            if comm is None or key in seen:
                stats.duplicates += 1
                continue
            seen.add(key)
            if comm.may_attempt(intent.attempt) or self._is_stale(comm, intent.attempt):
                result.append((intent, comm))
            else:
                stats.duplicates += 1
        return result

    def _is_stale(self, comm: Communication, attempt: int) -> bool:
        started = comm.attempt_started_at
        return (
            comm.awaiting_outcome and comm.attempts == attempt and started is not None
            and self.clock.now() - started >= self.stale_attempt
        )

    def _load(self, cls: type, ids: set[UUID]) -> dict[UUID, Any]:
        """The batch's aggregates of one kind, read in one query (absent ids: not found).
        An id of another kind is treated as not found, as a redelivered intent would be."""
        return {i: a for i, a in self.store.get_many(ids).items() if isinstance(a, cls)}

    def _decide(
        self,
        intent: SendIntent,
        comm: Communication,
        campaign: Campaign | None,
        contact: PatientContact | None,
        now: datetime,
        stats: DispatchStats,
        changed: dict[UUID, Any],
    ) -> _Job | None:
        reconcile = comm.awaiting_outcome
        if campaign is None or not campaign.is_active:
            if campaign is not None and campaign.status == "Stopped" and comm.cancel(
                now, "campaign stopped"
            ):
                changed[comm.id] = comm
                stats.cancelled += 1
            # An inactive campaign keeps its plan; re-activation reschedules it.
            return None
        if contact is None:
            self._skip(comm, now, SkipReason.UNKNOWN_PATIENT, stats, changed, reconcile)
            return None
        channel = Channel(comm.channel)
        sender = self.senders.get(channel)
        if sender is None:
            # This process has no gateway for the channel: another dispatcher's job, or a
            # configuration to fix. Never a skip: nothing is wrong with the patient.
            log.warning("no_sender_for_channel", channel=str(channel))
            return None
        verdict = sender.decide(comm, campaign, contact, now)
        if reconcile and not isinstance(verdict, Skip):
            # The attempt may have gone: compose what it sent, ask before anything else.
            message = sender.compose(comm, intent.attempt, campaign, contact, comm.purpose)
            return _Job(intent, comm, contact, campaign, sender, comm.purpose, message,
                        reconcile=True)
        if isinstance(verdict, Skip):
            self._skip(comm, now, verdict.reason, stats, changed, reconcile)
            return None
        if isinstance(verdict, Wait):
            comm.defer(self.calendar.next_open(channel, verdict.until), verdict.reason)
            changed[comm.id] = comm
            stats.deferred += 1
            return None
        if not self.calendar.is_open(channel, now):
            comm.defer(self.calendar.next_open(channel, now), "outside the communication window")
            changed[comm.id] = comm
            stats.deferred += 1
            return None
        message = sender.compose(comm, intent.attempt, campaign, contact, verdict)
        return _Job(intent, comm, contact, campaign, sender, verdict, message)

    def _skip(
        self, comm: Communication, now: datetime, reason: SkipReason, stats: DispatchStats,
        changed: dict[UUID, Any], reconcile: bool,
    ) -> None:
        if reconcile:
            return  # an attempt may have gone: let the receipt or a later pass settle it
        comm.skip(now, reason)
        changed[comm.id] = comm
        stats.skipped += 1

    def _apply_rate_cap(
        self, jobs: list[_Job], now: datetime, stats: DispatchStats, changed: dict[UUID, Any]
    ) -> list[_Job]:
        by_campaign: dict[UUID, list[_Job]] = {}
        for job in jobs:
            by_campaign.setdefault(job.campaign.id, []).append(job)
        admitted_jobs: list[_Job] = []
        for campaign_id, group in by_campaign.items():
            admitted, retry_at = self.limiter.reserve(
                campaign_id, [(j.comm.id, j.intent.attempt) for j in group], now)
            ok = set(admitted)
            gap = spacing(self.limiter.per_hour)
            waiting = 0
            for job in group:
                if (job.comm.id, job.intent.attempt) in ok:
                    admitted_jobs.append(job)
                elif not job.reconcile:
                    # Spread the refused ones over the capacity as it frees up, in order,
                    # instead of all retrying at the same instant.
                    until = (retry_at or now) + gap * waiting
                    job.comm.defer(self.calendar.next_open(Channel(job.comm.channel), until),
                                   "campaign rate cap reached")
                    changed[job.comm.id] = job.comm
                    stats.deferred += 1
                    self.metrics.rate_cap_deferrals.inc()
                    waiting += 1
        order = {id(j): n for n, j in enumerate(jobs)}
        return sorted(admitted_jobs, key=lambda j: order[id(j)])

    def _provider_slots(self, jobs: list[_Job], now: datetime) -> dict[int, datetime]:
        """Each send's slot under its provider's own per-second quota (email: SES), taken
        for the whole batch at once so processes sharing the quota never overlap."""
        slots: dict[int, datetime] = {}
        by_sender: dict[int, list[_Job]] = {}
        for job in jobs:
            if not job.reconcile:
                by_sender.setdefault(id(job.sender), []).append(job)
        for group in by_sender.values():
            times = group[0].sender.pace(len(group), now)
            if times is not None:
                slots.update({id(job): at for job, at in zip(group, times, strict=True)})
        return slots

    def _wait_for(self, slot: datetime | None) -> None:
        if slot is not None:
            self.clock.sleep_until(slot)

    def _call(self, job: _Job, now: datetime, stats: DispatchStats) -> None:
        message = job.message
        if job.reconcile:
            since = job.comm.attempt_started_at or now
            try:
                found = job.sender.find_sent(message, since - timedelta(seconds=5))
            except ConnectionError:
                log.warning("reconcile_unavailable", communication=str(job.comm.id))
                return
            if found is not None:
                job.result = found
                stats.reconciled += 1
                return
            if job.comm.call_made:
                # We called and lost the answer, and by now the provider has no record of
                # the message: that attempt failed. It counts, and the next one follows the
                # retry policy like any transient failure.
                job.result = SendResult.failed(
                    "not-found", "the provider has no record of the message",
                    FailureKind.TRANSIENT)
                return
            if not self.calendar.is_open(Channel(job.comm.channel), now):
                # It never went, and now is not the time: a transient failure, retried later.
                job.result = SendResult.failed(
                    "interrupted", "attempt interrupted before the provider call",
                    FailureKind.TRANSIENT)
                return
        job.result = job.sender.send(message)

    def _record(self, job: _Job, at: datetime, stats: DispatchStats,
                count: bool = True) -> None:
        result = job.result
        assert result is not None
        comm, attempt = job.comm, job.intent.attempt
        if count:
            self._count(job, result, at)
        if result.unknown:
            # Never a failure: a retry now could text the patient twice. The attempt stays
            # open; once it is stale the provider is asked (see `_call`), or its receipt
            # settles it first.
            comm.outcome_unknown(attempt, at, result.error_message or "outcome unknown",
                                 result.error_code)
            stats.unknown += 1
            log.warning("attempt_outcome_unknown", communication=str(comm.id),
                        attempt=attempt, code=result.error_code)
            return
        if result.accepted:
            comm.accept(attempt, at, result.provider_ref, result.segments)
            stats.sent += 1
            log.info("sent", communication=str(comm.id), attempt=attempt)
            return
        kind = result.kind or FailureKind.TRANSIENT
        policy = POLICIES[Channel(comm.channel)]
        next_at = policy.next_attempt_at(attempt, at, kind, str(comm.id))
        if next_at is not None:
            next_at = self.calendar.next_open(Channel(comm.channel), next_at)
        comm.fail(attempt, at, result.error_message or "provider refused", result.error_code,
                  kind, next_at, policy.max_attempts)
        stats.failed += 1
        if comm.status == CommStatus.RETRY_PENDING:
            self.metrics.retries_scheduled.inc()
        log.info("attempt_failed", communication=str(comm.id), attempt=attempt,
                 code=result.error_code, kind=str(kind))

    def _count(self, job: _Job, result: SendResult, at: datetime) -> None:
        """Metrics of one outcome: never a number, an id or a body (workers.metrics)."""
        outcome = UNKNOWN if result.unknown else SENT if result.accepted else FAILED
        self.metrics.send(outcome, result.error_code)
        if not job.reconcile:
            # Due → answer; a clock a little behind another process's could make it negative.
            waited = (at - job.intent.due_at).total_seconds()
            self.metrics.dispatch_latency.observe(max(0.0, waited))
