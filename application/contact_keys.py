"""Where the contact-key secret comes from (domain.preferences.ContactKeys uses it).

`OUTREACH_CONTACT_KEY_SECRET` when set (required on PostgreSQL: application.settings refuses
to start without it). The embedded SQLite default must work with no configuration, so it
generates a secret on first use and keeps it in a file beside the database
(`<database file>.contact-key`, mode 0600): back the two up together, and never delete or
replace that file while the database is in use — every number's key would change, and the
STOPs recorded under the old keys would no longer be found.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from application.settings import CONTACT_KEY_SECRET_ENV, Settings
from domain.preferences import MIN_SECRET_BYTES, ContactKeys

SECRET_FILE_SUFFIX = ".contact-key"


def secret_file(settings: Settings) -> Path:
    path = settings.sqlite_path
    return path.with_name(path.name + SECRET_FILE_SUFFIX)


def contact_keys(settings: Settings) -> ContactKeys:
    if settings.contact_key_secret is not None:
        return ContactKeys(settings.contact_key_secret.get_secret_value().encode("utf-8"))
    if settings.is_postgres:  # settings already refuse this; kept for a Settings built raw
        raise ValueError(f"{CONTACT_KEY_SECRET_ENV} is not set: PostgreSQL needs it")
    if settings.sqlite_path.name in ("", ":memory:"):
        # A database that dies with the process: so may its keys.
        return ContactKeys(secrets.token_urlsafe(32).encode("ascii"))
    return ContactKeys(_load_or_create(secret_file(settings)))


def _load_or_create(path: Path) -> bytes:
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole under a private name, then linked into place: a process starting at the
    # same moment either finds no file or the complete one, and only one secret ever wins.
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: use it
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> bytes:
    secret = path.read_bytes().strip()
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the contact-key file {path} holds no usable secret; restore it from "
                         "the backup taken with the database")
    return secret
