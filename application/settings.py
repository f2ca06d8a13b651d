"""Configuration from the environment (pydantic-settings). The one place that reads it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import holidays as holidays_lib
from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.calendar import DEFAULT_WINDOWS, SendingCalendar, Window
from domain.channels import Channel
from domain.patients import CHUNK_BYTES
from domain.preferences import MIN_SECRET_BYTES

CONTACT_KEY_SECRET_ENV = "OUTREACH_CONTACT_KEY_SECRET"

DAY_NAMES = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def parse_days(text: str) -> frozenset[int]:
    """'mon-sat' or 'mon,wed,fri' or 'all' → weekday numbers (Monday=0)."""
    text = text.strip().lower()
    if text == "all":
        return frozenset(range(7))
    days: set[int] = set()
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                a, b = (DAY_NAMES.index(p.strip()[:3]) for p in part.split("-"))
                days.update(range(a, b + 1))
            else:
                days.add(DAY_NAMES.index(part[:3]))
    except ValueError:
        raise ValueError(f"{text!r} is not days such as mon-sat, mon,wed,fri or all") from None
    return frozenset(days)


def parse_dates(text: str) -> frozenset[date]:
    """'2026-12-24, 2026-12-31' → those days (empty text: none)."""
    days: set[date] = set()
    for part in text.split(","):
        if part.strip():
            try:
                days.add(date.fromisoformat(part.strip()))
            except ValueError:
                raise ValueError(f"{part.strip()!r} is not a date (YYYY-MM-DD)") from None
    return frozenset(days)


class Settings(BaseSettings):
    # hide_input_in_errors: a refused secret must not be echoed in the error or a traceback.
    model_config = SettingsConfigDict(env_prefix="OUTREACH_", extra="ignore",
                                      hide_input_in_errors=True)

    database_url: str = "sqlite:///var/outreach.db"
    kafka_bootstrap_servers: str | None = None
    kafka_topic_prefix: str = "outreach"
    kafka_intent_partitions: int = 6
    kafka_session_timeout_ms: int = 6000  # a dead dispatcher's partitions move after this
    kafka_max_poll_interval_ms: int = 300_000  # a batch's provider calls must fit in this
    kafka_replication_factor: int = 1  # for topics outreach creates; 3 on a real cluster
    dispatch_batch: int = Field(default=100, ge=1)  # intents per poll
    db_pool_size: int = Field(default=5, ge=1)  # per process, event store and read models each
    # An attempt started this long ago without an outcome belongs to a dead dispatcher and is
    # reconciled with the provider; an intent with nothing come of it is re-issued after this.
    stale_attempt_seconds: float = Field(default=60.0, gt=0)
    reissue_after_seconds: float = Field(default=120.0, gt=0)
    # A campaign completes this long after its last communication ended, so a delivery
    # failure reported soon after the send can still be retried.
    receipt_grace_seconds: float = Field(default=600.0, ge=0)

    organisation: str = "Total Healthcare"
    timezone: str = "America/Chicago"
    text_window: str = "11:00-20:00"
    phone_window: str = "11:00-20:00"
    email_window: str = "09:00-22:45"
    sending_days: str = "mon-sat"
    holidays: str = "US"  # a country code for the `holidays` package, or "none"
    # The organisation's own extra non-sending days ("2026-12-24,2026-12-31"), on top of the
    # holidays country's: a start day on one moves like a holiday's (the Sunday rule).
    closed_dates: str = ""
    rate_cap_per_hour: int = Field(default=1000, ge=1)
    campaign_size_cap: int = Field(default=4000, ge=1)
    text_footer: str = "Reply STOP to opt out."
    help_number: str = "(555) 010-0100"  # default answer to HELP when no campaign names one
    user: str = "staff"  # who the command line acts as (audit trail)
    help_reply: str = "{organisation}: for help call {help_number}. Reply STOP to opt out."

    public_url: str | None = None  # https base URL Twilio calls back (signatures use it)
    # Encrypts event state at rest (eventsourcing AESCipher); never in a repr.
    cipher_key: str | None = Field(default=None, repr=False)

    twilio_account_sid: str | None = Field(default=None, validation_alias=AliasChoices(
        "TWILIO_ACCOUNT_SID", "OUTREACH_TWILIO_ACCOUNT_SID"))
    twilio_auth_token: str | None = Field(default=None, repr=False, validation_alias=AliasChoices(
        "TWILIO_AUTH_TOKEN", "OUTREACH_TWILIO_AUTH_TOKEN"))
    twilio_from_number: str | None = Field(default=None, validation_alias=AliasChoices(
        "TWILIO_FROM_NUMBER", "OUTREACH_TWILIO_FROM_NUMBER"))
    twilio_messaging_service_sid: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "TWILIO_MESSAGING_SERVICE_SID", "OUTREACH_TWILIO_MESSAGING_SERVICE_SID"))
    twilio_api_base_url: str | None = None  # tests point the official SDK at a local fake
    # How long a send waits for Twilio's answer. A later answer is not a failure: the
    # message may have gone, so the attempt is reconciled before any retry.
    twilio_timeout_seconds: float = Field(default=10.0, gt=0)

    simulator_failure_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    simulator_seed: int = 7
    # The simulators remember only their last N messages and calls (enough to reconcile a
    # crashed attempt and for tests to read): a long run's memory stays flat.
    simulator_keep_messages: int = Field(default=10_000, ge=1)

    # "json" (production), "console" (people), or "auto": json when stderr is not a
    # terminal (a service, a pipe), console when it is. application/logging.py
    log_format: Literal["console", "json", "auto"] = "console"
    log_level: str = "INFO"

    # `outreach serve` without webhook signature checks: local development with the
    # simulator gateway only (refused when any Twilio credential is set). Named to be loud.
    insecure_dev_no_signatures: bool = False

    # Contact keys (HMAC-SHA256 of a phone number under this secret): opt-out ids, the
    # intents' routing keys, the public topic's pseudonyms. At least 32 characters. Required
    # on PostgreSQL; the embedded SQLite default generates one into a 0600 file beside its
    # database (application/contact_keys.py). NEVER change it: every number's key changes
    # with it, and the opt-outs recorded under the old keys would no longer be found.
    contact_key_secret: SecretStr | None = Field(default=None, validate_default=True)

    @field_validator("contact_key_secret")
    @classmethod
    def _contact_key_secret_fits(cls, value: SecretStr | None,
                                 info: ValidationInfo) -> SecretStr | None:
        url = str(info.data.get("database_url", ""))
        if value is None and url.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"{CONTACT_KEY_SECRET_ENV} is not set: PostgreSQL needs it "
                             "(at least 32 characters, e.g. `python -c 'import secrets; "
                             "print(secrets.token_urlsafe(32))'`; never change it)")
        if value is not None and len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"{CONTACT_KEY_SECRET_ENV} needs at least {MIN_SECRET_BYTES} "
                             "characters")
        return value

    # Kafka records and topics (infra/README.md, "Topics"). gzip is the codec kafka-python
    # needs no extra package for (snappy, lz4 and zstd each need one). The size bound is the
    # producers' max_request_size and the max.message.bytes of the topics outreach creates;
    # its floor keeps an import chunk (domain.patients.CHUNK_BYTES of text, at most twice
    # that as JSON) publishable. Retention in ms (-1: forever) is applied when a topic is
    # created and checked at every start.
    kafka_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "gzip"
    kafka_max_message_bytes: int = Field(default=1_000_000, ge=2 * CHUNK_BYTES + 65_536)
    kafka_events_retention_ms: int = Field(default=30 * 86_400_000, ge=-1)
    kafka_intents_retention_ms: int = Field(default=86_400_000, ge=-1)

    # Pacing under the rate cap: a backlog (workers started late, a pause, an outage) leaves
    # at most this many texts together, then one every 3600/cap s. Why 10: domain/pacing.py
    # DEFAULT_BURST. A burst equal to the cap turns pacing off (the hourly cap alone).
    rate_burst: int = Field(default=10, ge=1)

    # Surviving a database restart: how long a process waits for a PostgreSQL connection
    # before it counts the database as unavailable (and backs off). eventsourcing retries a
    # store call 10 times on top of it; pooled connections are checked before use, so a
    # restarted server's dead connections are replaced instead of failing a step.
    db_connect_timeout_seconds: int = Field(default=3, ge=1)

    # Operators (workers/startup.py): how long a worker process waits for the broker when it
    # starts before it gives up with one line and exit code 3. Once running, outages are
    # ridden out with back-off instead (workers/resilience.py).
    startup_timeout_seconds: float = Field(default=30.0, gt=0)

    # Email (issue 10). "simulator" (default: the SES mailbox simulator's behaviour, no
    # network) or "ses" (Amazon SES v2 through boto3, credentials from the standard AWS chain).
    email_provider: Literal["simulator", "ses"] = "simulator"
    aws_region: str = Field(default="us-east-1", validation_alias=AliasChoices(
        "AWS_REGION", "AWS_DEFAULT_REGION", "OUTREACH_AWS_REGION"))
    ses_configuration_set: str | None = None  # its event destination: the SNS topic below
    ses_endpoint_url: str | None = None  # tests point boto3 at a local SES (moto)
    # SES's per-second quota; unset: read from the account (GetAccount MaxSendRate).
    ses_max_send_rate: float | None = Field(default=None, gt=0)
    # SNS topics whose notifications `serve` accepts at /webhooks/ses (comma-separated ARNs).
    ses_sns_topic_arns: str = ""
    # An email attempt whose answer was lost waits this long for SES's Send event before it
    # counts as not sent (SES cannot be asked whether a message went).
    email_events_grace_seconds: float = Field(default=900.0, gt=0)
    # Defaults for campaigns that do not name them; the from address is usually a
    # do-not-reply address the clinic's IT created (and verified at SES).
    email_from_address: str = "do-not-reply@example.org"
    email_from_name: str = ""  # empty: the organisation's name
    # The organisation's logos for email templates with a logo: "name=https://…/logo.png"
    # pairs, comma-separated. A campaign names one; with a single logo it is chosen for you.
    email_logos: str = ""
    # The SNS signing certificate read from this PEM file instead of fetched from SNS: for
    # tests and air-gapped deployments only. The certificate URL of every message is still
    # checked against SNS's host pattern first; only where the bytes come from changes.
    sns_certificate_file: Path | None = None

    # Phone calls (issue 11): Twilio Programmable Voice with the same account as texts.
    # The caller ID campaigns show unless they name one; Twilio's default is 1 call a
    # second per account, kept across every dispatcher (workers/provider_pace.py).
    twilio_voice_from_number: str | None = None
    calls_per_second: float = Field(default=1.0, gt=0)
    voice: str = "Polly.Joanna"  # the <Say> voice
    voice_language: str = "en-US"
    # Pressing 9 in a call opts the patient out of Health Reminders - Phone for this many
    # days (that opt-out is never permanent: the guide).
    phone_opt_out_days: int = Field(default=365, ge=1)

    # Letters (issue 11): where the letter and label PDFs are written (a shared volume when
    # several machines run workers), the organisation's return addresses ("Main=Total
    # Healthcare|100 Main St|Springfield, IL 62701; North=…": name=lines split by |, entries
    # by ;) and its letterhead logos ("main=/path/logo.png", comma-separated).
    letters_dir: Path = Path("var/letters")
    # Where logos uploaded in the console are kept (unset: a `logos` folder beside letters_dir).
    logos_dir: Path | None = None
    return_addresses: str = ""
    letter_logos: str = ""

    @model_validator(mode="after")
    def _email_grace_outlasts_a_stale_attempt(self) -> Settings:
        # A dead dispatcher's email attempt is reconciled once it is stale; SES cannot be
        # asked, so the attempt waits for SES's Send event until the grace has passed
        # (counted from 5 s before the attempt). A grace that ends before the first
        # reconciliation would re-send, at once, emails that went.
        if self.email_events_grace_seconds <= self.stale_attempt_seconds + 5:
            raise ValueError(
                "OUTREACH_EMAIL_EVENTS_GRACE_SECONDS must be more than "
                "OUTREACH_STALE_ATTEMPT_SECONDS + 5 (the wait for SES's Send event must "
                "outlast the first reconciliation of a dead dispatcher's attempt)")
        return self

    # -- derived -------------------------------------------------------------------------
    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgresql://", "postgres://"))

    @property
    def sqlite_path(self) -> Path:
        return Path(self.database_url.removeprefix("sqlite:///"))

    @property
    def uses_kafka(self) -> bool:
        return bool(self.kafka_bootstrap_servers)

    @property
    def uses_twilio(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    @property
    def uses_ses(self) -> bool:
        return self.email_provider == "ses"

    @property
    def logos(self) -> dict[str, str]:
        """The organisation's email logos, name → image URL."""
        pairs = [p.split("=", 1) for p in self.email_logos.split(",") if "=" in p]
        return {name.strip(): url.strip() for name, url in pairs if name.strip()}

    @property
    def return_address_book(self) -> dict[str, tuple[str, ...]]:
        """The organisation's return addresses, name → lines (the organisation's name and
        its address when none is configured)."""
        book: dict[str, tuple[str, ...]] = {}
        for entry in self.return_addresses.split(";"):
            name, _, lines = entry.partition("=")
            parts = tuple(p.strip() for p in lines.split("|") if p.strip())
            if name.strip() and parts:
                book[name.strip()] = parts
        return book

    @property
    def letter_logo_files(self) -> dict[str, Path]:
        pairs = [p.split("=", 1) for p in self.letter_logos.split(",") if "=" in p]
        return {name.strip(): Path(path.strip()) for name, path in pairs if name.strip()}

    @property
    def ses_topics(self) -> list[str]:
        return [t.strip() for t in self.ses_sns_topic_arns.split(",") if t.strip()]

    @property
    def logo_folder(self) -> Path:
        return self.logos_dir or Path(self.letters_dir).parent / "logos"

    # -- changed while running (issue 13: organisation settings) ---------------------------
    def with_values(self, values: Mapping[str, str]) -> Settings:
        """A copy with `values` (field name → text) validated and set, its calendar built
        (which checks windows, days, holidays and closed dates). Raises ValueError naming
        the first key refused, in one line."""
        new = self.model_copy()
        new.__dict__.pop("calendar", None)  # model_copy copies the cached calendar too
        for key, value in values.items():
            if key not in type(self).model_fields:
                raise ValueError(f"{key}: not a setting")
            try:
                new.__pydantic_validator__.validate_assignment(new, key, value)
            except ValueError as exc:  # pydantic's ValidationError is a ValueError
                errors = getattr(exc, "errors", None)
                reason = errors()[0]["msg"] if callable(errors) else str(exc)
                raise ValueError(f"{key}: {reason}") from None
        for key in values:
            try:
                _check_calendar_part(new, key)
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
        try:
            new.calendar  # noqa: B018 - built whole to be checked
        except (ValueError, KeyError, NotImplementedError) as exc:
            raise ValueError(f"calendar: {exc}") from None
        return new

    def adopt(self, other: Settings, keys: Mapping[str, object]) -> None:
        """Take `keys`' values from `other` in place. In place, not a new object: every
        service was given this one object and reads its attributes when it works, so they
        all see the change at once. The calendar is cached (windows parsed, holidays
        loaded): it is dropped here and rebuilt on its next use."""
        for key in keys:
            object.__setattr__(self, key, getattr(other, key))
        self.__dict__.pop("calendar", None)

    @cached_property
    def calendar(self) -> SendingCalendar:
        days = parse_days(self.sending_days)
        windows = dict(DEFAULT_WINDOWS)
        windows[Channel.TEXT] = Window.parse(self.text_window, days)
        windows[Channel.PHONE] = Window.parse(self.phone_window, days)
        windows[Channel.EMAIL] = Window.parse(self.email_window, days)
        windows[Channel.LETTER] = Window(DEFAULT_WINDOWS[Channel.LETTER].start,
                                         DEFAULT_WINDOWS[Channel.LETTER].end, days)
        closed = parse_dates(self.closed_dates)
        if self.holidays.lower() == "none":
            return SendingCalendar(ZoneInfo(self.timezone), windows, closed.__contains__)
        country = holidays_lib.country_holidays(self.holidays.upper())
        return SendingCalendar(ZoneInfo(self.timezone), windows,
                               lambda d: d in closed or d in country)

    # Staff users and sign-in (issue 12). Lockout: after this many consecutive failed
    # sign-ins the account is locked, first for login_lockout_minutes, doubling on each
    # further lockout up to login_lockout_max_hours. Browser sessions end after
    # session_idle_minutes without a request (automatic logoff) and session_max_hours after
    # sign-in whatever happens. API tokens of people last api_token_days unless asked for
    # fewer (at most api_token_max_days); a password-reset token password_reset_hours.
    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_minutes: float = Field(default=15.0, gt=0)
    login_lockout_max_hours: float = Field(default=24.0, gt=0)
    session_idle_minutes: float = Field(default=15.0, gt=0)
    session_max_hours: float = Field(default=12.0, gt=0)
    api_token_days: int = Field(default=90, ge=1)
    api_token_max_days: int = Field(default=365, ge=1)
    password_reset_hours: float = Field(default=24.0, gt=0)
    password_min_length: int = Field(default=8, ge=8, le=64)



def _check_calendar_part(settings: Settings, key: str) -> None:
    """The part of the calendar `key` makes, built alone: so a refusal names its key."""
    value = str(getattr(settings, key))
    if key.endswith("_window"):
        Window.parse(value, parse_days(settings.sending_days))
    elif key == "sending_days":
        parse_days(value)
    elif key == "holidays" and value.lower() != "none":
        try:
            holidays_lib.country_holidays(value.upper())
        except NotImplementedError:
            raise ValueError(f"no holidays known for country {value!r} (a code such as "
                             "US, or none)") from None
    elif key == "closed_dates":
        parse_dates(value)
    elif key == "timezone":
        try:
            ZoneInfo(value)
        except (KeyError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
