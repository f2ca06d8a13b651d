"""Ports the application services depend on, with the shapes they exchange."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from domain.channels import Channel


@dataclass(frozen=True)
class PatientContact:
    """What sending needs to know of one patient, read from the patients read model."""

    patient_id: str
    first_name: str
    last_name: str
    status: str  # "Active" | "Inactive"
    mobile: str | None  # E.164 or None
    home_phone: str | None
    email: str | None
    appointment_reminders_only: bool = False
    provider: str = ""  # the patient's provider (PCP) name, for merge fields
    #: postal address for letters: street line(s), then "City, ST 12345"
    postal_address: tuple[str, ...] = ()

    def address_for(self, channel: Channel) -> str | None:
        if channel == Channel.TEXT:
            return self.mobile
        if channel == Channel.PHONE:
            return self.mobile or self.home_phone
        if channel == Channel.EMAIL:
            return self.email
        return None


class PatientDirectory(ABC):
    @abstractmethod
    def contacts(self, patient_ids: Sequence[str]) -> dict[str, PatientContact]:
        """Contacts of the given patients (unknown ids are simply absent)."""

    @abstractmethod
    def default_audience(self, channel: Channel) -> list[str]:
        """All Active patients having the channel's contact, ordered by patient id."""

    @abstractmethod
    def patients_with_mobile(self, e164: str) -> list[str]:
        """Every patient whose mobile is this number (a STOP applies to all of them)."""


class InMemoryPatientDirectory(PatientDirectory):
    """A real in-memory adapter for unit tests and the simulator."""

    def __init__(self, patients: Sequence[PatientContact] = ()) -> None:
        self._by_id = {p.patient_id: p for p in patients}

    def add(self, patient: PatientContact) -> None:
        self._by_id[patient.patient_id] = patient

    def contacts(self, patient_ids: Sequence[str]) -> dict[str, PatientContact]:
        return {pid: self._by_id[pid] for pid in patient_ids if pid in self._by_id}

    def default_audience(self, channel: Channel) -> list[str]:
        return sorted(
            p.patient_id for p in self._by_id.values()
            if p.status == "Active" and p.address_for(channel)
        )

    def patients_with_mobile(self, e164: str) -> list[str]:
        return sorted(p.patient_id for p in self._by_id.values() if p.mobile == e164)
