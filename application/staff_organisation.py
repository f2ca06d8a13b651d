"""Organisation settings for an acting user: administrators (SETTINGS_MANAGE) read and change
them; every call is audited. None of these settings is a secret, but the audit detail names
the keys changed only: the values are in the settings' own history (domain/organisation.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from application.organisation import OrganisationService, SettingValue
from application.staff_base import AuditSink, Guarded
from domain.access import Actor, Permission

MANAGE = Permission.SETTINGS_MANAGE


class OrganisationFacade(Guarded):
    def __init__(self, service: OrganisationService, audit: AuditSink) -> None:
        super().__init__(audit)
        self.service = service

    def settings(self, actor: Actor) -> list[SettingValue]:
        with self.audited(actor, MANAGE, "settings.view"):
            self.service.refresh()  # another process may have changed them
            return self.service.current()

    def change(self, actor: Actor, values: Mapping[str, str]) -> list[str]:
        """The keys changed (none when every value was already the current one)."""
        keys = ",".join(sorted(values))[:200]
        with self.audited(actor, MANAGE, "settings.change", target=keys) as note:
            self.service.refresh()
            changed = self.service.change(values, actor.username)
            note.detail = f"changed {','.join(changed) or 'nothing'}"
            return changed

    def upload_logo(self, actor: Actor, name: str, data: bytes) -> str:
        """Keep a PNG/JPEG logo and make it a letter logo by `name`; its stored path."""
        with self.audited(actor, MANAGE, "settings.logo", target=name[:100]) as note:
            path = self.service.save_logo(name, data, actor.username)
            note.detail = f"logo {name[:60]!r}, {len(data)} bytes"
            return path
