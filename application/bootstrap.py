"""The one wiring place: settings → adapters. SQLite + embedded bus + simulator when nothing
is configured; PostgreSQL, Kafka and Twilio when the environment says so. Nothing here runs
at import time: `build()` opens the connections."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta

from application.audit import AuditTrail
from application.campaigns import CampaignService
from application.clock import SystemClock
from application.contact_keys import contact_keys as load_contact_keys
from application.email_compose import EmailComposition
from application.email_events import EmailEventService
from application.inbound_service import InboundService
from application.letters import LetterService
from application.logging import configure_logging
from application.organisation import OrganisationService
from application.patients import PatientService
from application.ports import PatientDirectory
from application.settings import Settings
from application.staff import Staff, build_staff
from application.staff_replies import build_replies
from application.store import EventStore, open_event_store, schema_lock
from application.unsubscribe import UnsubscribeTokens
from application.users import UserService
from application.voice_events import VoiceEventService
from domain.clock import Clock
from domain.pacing import Pace
from domain.preferences import ContactKeys
from gateways.email import EmailGateway
from gateways.pdf_letters import PdfLetterPrinter
from gateways.simulator_email import SimulatorEmailGateway
from gateways.simulator_sms import SimulatorSmsGateway
from gateways.sms import SmsGateway
from gateways.voice import VoiceGateway
from projections import runner as follower
from projections.base import Projection
from projections.campaigns import CampaignProjection
from projections.db import Database, open_database
from projections.preferences import PreferencesProjection
from workers.ratelimit import RateLimiter
from workers.scheduler import DDL as SCHEDULER_DDL

#: How stale a process's organisation settings may be when another process changed them.
SETTINGS_TTL_S = 3.0


def build_gateway(settings: Settings, clock: Clock) -> SmsGateway:
    if settings.uses_twilio:
        from gateways.twilio_sms import TwilioSmsGateway

        return TwilioSmsGateway(
            str(settings.twilio_account_sid), str(settings.twilio_auth_token),
            from_number=settings.twilio_from_number,
            messaging_service_sid=settings.twilio_messaging_service_sid,
            status_callback_base=settings.public_url,
            api_base_url=settings.twilio_api_base_url,
            timeout=settings.twilio_timeout_seconds,
        )
    return SimulatorSmsGateway(now=clock.now, failure_rate=settings.simulator_failure_rate,
                               seed=settings.simulator_seed,
                               keep=settings.simulator_keep_messages)


def build_email_gateway(settings: Settings, clock: Clock) -> EmailGateway:
    if settings.uses_ses:
        from gateways.ses_email import SesEmailGateway

        if not (settings.public_url or "").startswith("https://"):
            # Every email carries its one-click unsubscribe link (RFC 8058: https).
            raise ValueError("OUTREACH_EMAIL_PROVIDER=ses needs OUTREACH_PUBLIC_URL, the "
                             "https base URL of `outreach serve` (unsubscribe links, SNS)")

        return SesEmailGateway(
            region=settings.aws_region, configuration_set=settings.ses_configuration_set,
            now=clock.now, endpoint_url=settings.ses_endpoint_url,
            max_send_rate=settings.ses_max_send_rate,
            events_grace=timedelta(seconds=settings.email_events_grace_seconds))
    return SimulatorEmailGateway(now=clock.now, failure_rate=settings.simulator_failure_rate,
                                 seed=settings.simulator_seed,
                                 keep=settings.simulator_keep_messages)


def build_voice_gateway(settings: Settings, clock: Clock) -> VoiceGateway:
    if settings.uses_twilio:
        from gateways.twilio_voice import TwilioVoiceGateway

        return TwilioVoiceGateway(
            str(settings.twilio_account_sid), str(settings.twilio_auth_token),
            from_number=settings.twilio_voice_from_number or settings.twilio_from_number or "",
            callback_base=settings.public_url, api_base_url=settings.twilio_api_base_url,
            timeout=settings.twilio_timeout_seconds, calls_per_second=settings.calls_per_second)
    from gateways.simulator_voice import SimulatorVoiceGateway

    return SimulatorVoiceGateway(now=clock.now, seed=settings.simulator_seed,
                                 failure_rate=settings.simulator_failure_rate,
                                 keep=settings.simulator_keep_messages)


@dataclass
class Outreach:
    settings: Settings
    clock: Clock
    store: EventStore
    db: Database
    directory: PatientDirectory
    gateway: SmsGateway
    limiter: RateLimiter
    campaigns: CampaignService
    inbound: InboundService
    patients: PatientService
    contact_keys: ContactKeys  # keys phone numbers: opt-outs, routing keys, public topic
    email_gateway: EmailGateway
    email_composition: EmailComposition
    email: EmailEventService  # SES events and unsubscribe clicks
    letters: LetterService  # letter files made in the background
    voice_gateway: VoiceGateway
    voice: VoiceEventService  # calls' callbacks: answers, machines, keys pressed
    users: UserService  # staff users, sign-in, tokens, sessions
    audit: AuditTrail  # who did and saw what (append-only, in the event store)
    organisation: OrganisationService  # settings administrators change while it runs
    projections: list[Projection] = field(default_factory=list)
    # The access-checked, audited facades every face calls (CLI, HTTP API): set by build().
    staff: Staff = field(init=False, repr=False)
    _caught_up_to: int | None = field(default=None, repr=False)
    _settings_checked: float = field(default=float("-inf"), repr=False)

    def follow_settings(self, every_s: float = 0.0) -> bool:
        """Apply organisation settings another process stored, at most every `every_s`
        seconds of real time (a monotonic clock: how often to look is the process's own
        business, not the simulated time of the outreach clock). True when they changed."""
        now = time.monotonic()
        if now - self._settings_checked < every_s:
            return False
        self._settings_checked = now
        return self.organisation.refresh()

    def settings_changed(self) -> None:
        """What copied a setting when it was built follows it (the rest reads `settings`,
        changed in place): the rate limiter's pace."""
        self.limiter.pace = Pace(self.settings.rate_cap_per_hour, self.settings.rate_burst)

    def catch_up(self) -> int:
        # The server reads through here on every request: settings another process changed
        # (the CLI, another server) are picked up within SETTINGS_TTL_S.
        self.follow_settings(SETTINGS_TTL_S)
        # Most calls find nothing new: one cheap look at the log's head saves a transaction
        # per projection. Another process may have written since: then we do the full pass.
        head = self.store.recorder.max_notification_id()
        if head is not None and head == self._caught_up_to:
            return 0
        applied = follower.catch_up(self.store, self.db, self.projections)
        self._caught_up_to = head
        return applied

    def rebuild(self) -> int:
        self._caught_up_to = None
        return follower.rebuild(self.store, self.db, self.projections)

    def close(self) -> None:
        self.db.close()
        self.store.close()


def build(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    gateway: SmsGateway | None = None,
    email_gateway: EmailGateway | None = None,
    voice_gateway: VoiceGateway | None = None,
    directory: PatientDirectory | None = None,
    configure_logs: bool = False,
) -> Outreach:
    settings = settings or Settings()
    if configure_logs:
        configure_logging(settings.log_format, settings.log_level)
    clock = clock or SystemClock()
    keys = load_contact_keys(settings)
    holder: list[Outreach] = []
    with schema_lock(settings):
        store = open_event_store(settings)
        db = open_database(settings.database_url, settings.db_pool_size,
                           settings.db_connect_timeout_seconds)
        # The stored organisation settings first: everything built below reads them.
        organisation = OrganisationService(store, settings, clock)
        organisation.refresh()
        projections: list[Projection] = [CampaignProjection(), PreferencesProjection()]
        patients = PatientService(store, db, clock, settings)
        projections = [*patients.projections, *projections]
        follower.prepare(db, projections)
        limiter = RateLimiter(db, settings.rate_cap_per_hour, burst=settings.rate_burst)
        db.migrate(SCHEDULER_DDL)
        users = UserService(store, db, clock, settings, secret=keys.secret)
        audit = AuditTrail(store, db, clock, lambda: holder[0].catch_up())
        projections += [*users.projections, *audit.projections]
        follower.prepare(db, projections)
    if directory is None:
        directory = patients.directory()
    gateway = gateway or build_gateway(settings, clock)
    email_gateway = email_gateway or build_email_gateway(settings, clock)
    voice_gateway = voice_gateway or build_voice_gateway(settings, clock)
    tokens = UnsubscribeTokens(keys.secret)
    composition = EmailComposition(settings, tokens)

    def catch_up() -> int:
        return holder[0].catch_up()

    outreach = Outreach(
        settings=settings, clock=clock, store=store, db=db, directory=directory,
        gateway=gateway, limiter=limiter,
        campaigns=CampaignService(store, db, directory, clock, settings, gateway, catch_up,
                                  email_gateway, composition, voice_gateway),
        inbound=InboundService(store, db, clock, settings, keys), patients=patients,
        contact_keys=keys, projections=projections, email_gateway=email_gateway,
        email_composition=composition,
        email=EmailEventService(store, directory, clock, settings, keys, tokens),
        letters=LetterService(store, db, directory, clock, settings, PdfLetterPrinter(),
                              catch_up),
        voice_gateway=voice_gateway,
        voice=VoiceEventService(store, directory, clock, settings, voice_gateway),
        users=users, audit=audit, organisation=organisation,
    )
    organisation.on_change = outreach.settings_changed
    holder.append(outreach)
    replies = build_replies(outreach, audit)
    outreach.projections.extend(replies.inbox.projections)
    outreach.staff = build_staff(outreach, users, audit, replies)
    return outreach
