"""Organisation settings changed by administrators while outreach runs (issue 13).

The environment gives each setting's default (application/settings.py); the values stored in
the OrganisationSettings aggregate (domain/organisation.py) override them. Every process
holds one Settings object that all its services read when they work: applying the stored
values means setting them on that object in place (Settings.adopt) and dropping its cached
calendar. A process applies them when it starts (bootstrap) and again whenever the stored
version moves (`refresh`: one indexed read of the aggregate's last event), which the worker
loops and the server do every few seconds (Outreach.follow_settings).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from application.settings import Settings
from application.store import EventStore
from domain.clock import Clock
from domain.organisation import ORGANISATION_SETTINGS_ID, InvalidSetting, OrganisationSettings

log = structlog.get_logger("organisation")

#: The settings an administrator may change, in the order pages show them.
KEYS: tuple[str, ...] = (
    "organisation", "timezone", "text_window", "phone_window", "email_window", "sending_days",
    "holidays", "closed_dates", "rate_cap_per_hour", "campaign_size_cap", "text_footer",
    "help_number", "email_from_address", "email_from_name", "email_logos",
    "return_addresses", "letter_logos")

MAX_VALUE = 4000  # characters: the longest setting is a book of return addresses
MAX_LOGO_BYTES = 512 * 1024
LOGO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
_IMAGE_KINDS = {b"\x89PNG\r\n\x1a\n": "png", b"\xff\xd8\xff": "jpg"}


@dataclass(frozen=True)
class SettingValue:
    key: str
    value: str
    source: str  # "environment" (the default) or "changed"
    by: str = ""
    at: datetime | None = None


def as_text(value: object) -> str:
    return "" if value is None else str(value)


class OrganisationService:
    def __init__(self, store: EventStore, settings: Settings, clock: Clock,
                 on_change: Callable[[], None] | None = None) -> None:
        self.store = store
        self.clock = clock
        #: the live settings every service of this process holds (changed in place)
        self.settings = settings
        #: the environment's values, before any stored one was applied
        self.defaults = settings.model_copy()
        self.defaults.__dict__.pop("calendar", None)
        self.on_change = on_change
        self.applied_version = 0

    # -- reading -------------------------------------------------------------------------
    def _load(self) -> OrganisationSettings | None:
        try:
            aggregate: OrganisationSettings = self.store.repository.get(
                ORGANISATION_SETTINGS_ID)
        except AggregateNotFoundError:
            return None
        return aggregate

    def stored_version(self) -> int:
        """The aggregate's version (0: never changed): one indexed read."""
        events = self.store.recorder.select_events(ORGANISATION_SETTINGS_ID, desc=True,
                                                   limit=1)
        return int(events[0].originator_version) if events else 0

    def current(self) -> list[SettingValue]:
        """Every changeable setting's effective value and where it comes from."""
        stored = self._load()
        rows = []
        for key in KEYS:
            value = as_text(getattr(self.settings, key))
            if stored is not None and key in stored.values:
                rows.append(SettingValue(key, value, "changed", stored.changed_by[key],
                                         stored.changed_at[key]))
            else:
                rows.append(SettingValue(key, value, "environment"))
        return rows

    # -- applying ------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Apply the stored values when they changed since this process last did."""
        version = self.stored_version()
        if version == self.applied_version:
            return False
        stored = self._load()
        self._apply(stored.values if stored else {})
        if self.applied_version:  # a change while running (at start: nothing to say)
            log.info("organisation_settings_applied", version=stored.version if stored else 0)
        self.applied_version = stored.version if stored else 0
        return True

    def _apply(self, values: Mapping[str, str]) -> None:
        # Key by key over the environment's values: a stored value the environment no
        # longer allows (a holidays package without that country) is left out, loudly,
        # instead of stopping every process.
        effective = self.defaults
        for key, value in values.items():
            if key not in KEYS:
                continue
            try:
                effective = effective.with_values({key: value})
            except ValueError as exc:
                log.warning("stored_setting_ignored", key=key, reason=str(exc))
        self.settings.adopt(effective, dict.fromkeys(KEYS))
        if self.on_change is not None:
            self.on_change()

    # -- changing ------------------------------------------------------------------------
    def check(self, values: Mapping[str, str]) -> dict[str, str]:
        """The values that differ from the effective ones, validated together with the
        stored ones. Raises InvalidSetting with one line naming the key."""
        clean: dict[str, str] = {}
        for key, value in values.items():
            if key not in KEYS:
                raise InvalidSetting(f"{key}: not an organisation setting")
            text = str(value).strip()
            if len(text) > MAX_VALUE:
                raise InvalidSetting(f"{key}: at most {MAX_VALUE} characters")
            if any(ord(c) < 32 for c in text):
                raise InvalidSetting(f"{key}: one line, no control characters")
            clean[key] = text
        stored = self._load()
        try:
            self.defaults.with_values({**(stored.values if stored else {}),
                                                   **clean})
        except ValueError as exc:
            raise InvalidSetting(str(exc)) from None
        _check_books(clean)
        return {k: v for k, v in clean.items() if v != as_text(getattr(self.settings, k))}

    def change(self, values: Mapping[str, str], by: str) -> list[str]:
        """Store the changed values (refused whole when one is invalid); the keys changed."""
        changed = self.check(values)
        if not changed:
            return []
        for attempt in range(3):
            aggregate = self._load() or OrganisationSettings()
            aggregate.change(values=changed, by=by, at=self.clock.now())
            try:
                self.store.save(aggregate)
                break
            except IntegrityError:  # another administrator saved at the same moment
                if attempt == 2:
                    raise InvalidSetting("settings: changed by someone else at the same "
                                         "time; try again") from None
        self.refresh()
        return sorted(changed)

    def save_logo(self, name: str, data: bytes, by: str) -> str:
        """Keep an uploaded PNG or JPEG under `name` and make it a letter logo; its path."""
        name = name.strip()
        if not LOGO_NAME.match(name):
            raise InvalidSetting("logo: a name of letters, digits, - or _ (at most 40)")
        if not data:
            raise InvalidSetting("logo: the file is empty")
        if len(data) > MAX_LOGO_BYTES:
            raise InvalidSetting(f"logo: at most {MAX_LOGO_BYTES // 1024} KB")
        kind = next((k for magic, k in _IMAGE_KINDS.items() if data.startswith(magic)), None)
        if kind is None or not _decodes(data):
            raise InvalidSetting("logo: not a PNG or JPEG image")
        folder = Path(self.settings.logo_folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = (folder / f"{name}.{kind}").resolve()
        path.write_bytes(data)
        logos = {**self.settings.letter_logo_files, name: path}
        self.change({"letter_logos": ",".join(f"{n}={p}" for n, p in logos.items())}, by)
        return str(path)


def _decodes(data: bytes) -> bool:
    """Whether the bytes are a whole image (a renamed text file starting with the magic
    bytes is not)."""
    from io import BytesIO

    from PIL import Image

    try:
        with Image.open(BytesIO(data)) as image:
            image.verify()
    except Exception:  # noqa: BLE001 - any decoder complaint means "not an image"
        return False
    return True


def _check_books(clean: Mapping[str, str]) -> None:
    """The lists written as text must read back whole: an entry the parser would drop
    silently is refused instead."""
    if "return_addresses" in clean:
        for entry in filter(None, (e.strip() for e in clean["return_addresses"].split(";"))):
            name, sep, lines = entry.partition("=")
            if not sep or not name.strip() or not lines.strip("| "):
                raise InvalidSetting(f"return_addresses: {entry[:40]!r} is not "
                                     "Name=line|line")
    for key, scheme in (("email_logos", "https://"), ("letter_logos", "")):
        if key not in clean:
            continue
        for entry in filter(None, (e.strip() for e in clean[key].split(","))):
            name, sep, target = entry.partition("=")
            if not sep or not name.strip() or not target.strip():
                raise InvalidSetting(f"{key}: {entry[:40]!r} is not name=" +
                                     ("https://…" if scheme else "path"))
            if scheme and not target.strip().startswith(scheme):
                raise InvalidSetting(f"{key}: the logo {name.strip()!r} needs an https URL")
            if key == "letter_logos" and not Path(target.strip()).is_file():
                raise InvalidSetting(f"{key}: no file for the logo {name.strip()!r}")
