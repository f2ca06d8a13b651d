"""One communication per patient per campaign, and what may happen to it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.communication import (
    CommStatus,
    Communication,
    SkipReason,
    communication_id,
)
from domain.errors import DomainError
from domain.retry import FailureKind

CAMPAIGN = UUID("6f1c1c9e-3a55-4d0e-9a53-0c1b7f9d2a10")
T0 = datetime(2026, 6, 9, 16, tzinfo=UTC)
LATER = T0 + timedelta(minutes=5)


def planned(campaign: UUID = CAMPAIGN, patient: str = "p-1") -> Communication:
    return Communication(campaign_id=campaign, patient_id=patient, channel="text", sequence=0,
                         due_at=T0)


def sending() -> Communication:
    comm = planned()
    comm.start_attempt(1, T0)
    return comm


def sent() -> Communication:
    comm = sending()
    comm.accept(1, T0, provider_ref="SM1")
    return comm


def retry_pending() -> Communication:
    comm = sending()
    comm.fail(1, T0, reason="busy", code="30001", kind=FailureKind.TRANSIENT,
              next_attempt_at=T0 + timedelta(minutes=15))
    return comm


def skipped() -> Communication:
    comm = planned()
    comm.skip(T0, SkipReason.INVALID_NUMBER)
    return comm


Make = Callable[[], Communication]


def event_names(comm: Communication) -> list[str]:
    return [type(e).__name__ for e in comm.collect_events()]


# -- identity -----------------------------------------------------------------------------

@given(campaign=st.uuids(), patient=st.text(min_size=1, max_size=30))
def test_the_communication_id_is_derived_from_campaign_and_patient_deterministically(
    campaign: UUID, patient: str
) -> None:
    # Given a campaign and a patient, when the communication is planned (twice: a redelivery)
    first, again = planned(campaign, patient), planned(campaign, patient)
    # Then both have the same id, the uuid5 of the pair: a second one would clash in the store
    assert first.id == again.id == communication_id(campaign, patient)
    assert first.id.version == 5


@given(
    campaigns=st.lists(st.uuids(), min_size=2, max_size=2, unique=True),
    patient=st.text(min_size=1, max_size=30),
)
def test_the_same_patient_in_two_campaigns_gets_two_communications(
    campaigns: list[UUID], patient: str
) -> None:
    a, b = campaigns
    assert communication_id(a, patient) != communication_id(b, patient)


@given(patients=st.lists(st.text(min_size=1, max_size=30), min_size=2, max_size=2, unique=True))
def test_two_patients_of_one_campaign_get_two_communications(patients: list[str]) -> None:
    a, b = patients
    assert communication_id(CAMPAIGN, a) != communication_id(CAMPAIGN, b)


def test_the_id_is_stable_across_releases() -> None:
    # A recorded value: ids of communications already in the store must stay the same, or a
    # redelivered intent after an upgrade would plan a second communication.
    assert communication_id(CAMPAIGN, "p-1") == UUID("29caf7c9-2851-599e-b090-8fe5829074da")


# -- skip ---------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [planned, retry_pending], ids=["planned", "retry-pending"])
def test_a_communication_not_under_way_can_be_skipped_with_a_reason(make: Make) -> None:
    comm = make()
    comm.skip(LATER, SkipReason.OPTED_OUT)
    assert comm.status == CommStatus.SKIPPED and comm.reason == "opted out"
    assert comm.due_at is None and comm.is_final


def test_an_attempt_under_way_cannot_be_skipped() -> None:
    comm = sending()
    with pytest.raises(DomainError, match="under way"):
        comm.skip(LATER, SkipReason.OPTED_OUT)
    assert comm.status == CommStatus.SENDING


@pytest.mark.parametrize("make", [sent, skipped], ids=["sent", "skipped"])
def test_a_finished_communication_cannot_be_skipped(make: Make) -> None:
    comm = make()
    status = comm.status
    with pytest.raises(DomainError, match="already"):
        comm.skip(LATER, SkipReason.NO_MOBILE)
    assert comm.status == status


# -- cancel (the campaign was stopped) ----------------------------------------------------

@pytest.mark.parametrize("make", [planned, retry_pending], ids=["planned", "retry-pending"])
def test_stopping_the_campaign_cancels_what_was_not_yet_sent(make: Make) -> None:
    comm = make()
    assert comm.cancel(LATER, "campaign stopped") is True
    assert comm.status == CommStatus.CANCELLED and comm.due_at is None
    assert not comm.may_attempt(comm.attempts + 1)


def test_cancel_leaves_an_attempt_under_way_alone_so_its_outcome_can_be_recorded() -> None:
    # Given an attempt under way
    comm = sending()
    event_names(comm)
    # When the campaign is stopped, then the communication is not cancelled
    assert comm.cancel(LATER, "campaign stopped") is False
    assert comm.status == CommStatus.SENDING and event_names(comm) == []
    # And the provider's answer is still recorded
    comm.accept(1, LATER, provider_ref="SM1")
    assert comm.status == CommStatus.SENT


@pytest.mark.parametrize("make", [sent, skipped], ids=["sent", "skipped"])
def test_cancel_after_the_communication_finished_does_nothing(make: Make) -> None:
    comm = make()
    status = comm.status
    event_names(comm)
    assert comm.cancel(LATER, "campaign stopped") is False
    assert comm.status == status and event_names(comm) == []


# -- delivery receipts --------------------------------------------------------------------

def test_a_duplicate_delivery_receipt_changes_nothing() -> None:
    # Given a sent text
    comm = sent()
    event_names(comm)
    # When the delivery receipt arrives twice
    first = comm.confirm_delivery(LATER)
    second = comm.confirm_delivery(LATER + timedelta(seconds=1))
    # Then only the first records a Delivered event
    assert (first, second) == (True, False)
    assert event_names(comm) == ["Delivered"]
    assert comm.status == CommStatus.DELIVERED


@pytest.mark.parametrize("make", [planned, sending, retry_pending],
                         ids=["planned", "sending", "retry-pending"])
def test_a_delivery_receipt_for_a_message_not_accepted_is_ignored(make: Make) -> None:
    comm = make()
    status = comm.status
    assert comm.confirm_delivery(LATER) is False and comm.status == status


def test_an_undelivered_receipt_after_acceptance_schedules_a_retry() -> None:
    # Given a sent text, when the carrier reports it undelivered (transient)
    comm = sent()
    comm.fail(1, LATER, reason="unreachable", code="30003", kind=FailureKind.TRANSIENT,
              next_attempt_at=LATER + timedelta(minutes=15))
    # Then it waits for attempt 2
    assert comm.status == CommStatus.RETRY_PENDING and comm.may_attempt(2)


def test_an_outcome_for_an_attempt_that_is_not_the_current_one_is_refused() -> None:
    comm = sending()
    with pytest.raises(DomainError, match="no attempt 2"):
        comm.accept(2, LATER, provider_ref="SM2")
    with pytest.raises(DomainError, match="attempt 1 cannot start"):
        comm.start_attempt(1, LATER)  # the same attempt twice


# -- reschedule and defer -----------------------------------------------------------------

def test_a_planned_communication_can_be_rescheduled() -> None:
    comm = planned()
    event_names(comm)
    comm.reschedule(T0 + timedelta(days=1), sequence=7)
    assert (comm.due_at, comm.sequence) == (T0 + timedelta(days=1), 7)
    # And rescheduling to the same slot records nothing
    comm.reschedule(T0 + timedelta(days=1), sequence=7)
    assert event_names(comm) == ["Rescheduled"]


@pytest.mark.parametrize("make", [sending, retry_pending, sent, skipped],
                         ids=["sending", "retry-pending", "sent", "skipped"])
def test_only_a_planned_communication_can_be_rescheduled(make: Make) -> None:
    comm = make()
    due = comm.due_at
    with pytest.raises(DomainError, match="cannot reschedule"):
        comm.reschedule(T0 + timedelta(days=1), sequence=7)
    assert comm.due_at == due


def test_deferring_moves_the_due_time_but_not_an_attempt_under_way() -> None:
    comm = planned()
    comm.defer(T0 + timedelta(hours=19), reason="window closed")
    assert comm.due_at == T0 + timedelta(hours=19) and comm.status == CommStatus.PLANNED
    comm.start_attempt(1, T0 + timedelta(hours=19))
    with pytest.raises(DomainError, match="cannot defer"):
        comm.defer(T0 + timedelta(hours=20), reason="rate cap")


def test_a_lost_provider_answer_keeps_the_attempt_open_until_the_provider_is_asked() -> None:
    # Given an attempt under way whose provider answer was lost (a timeout after sending)
    comm = sending()
    assert not comm.call_made  # a dispatcher that died here may never have called
    comm.outcome_unknown(1, T0, "provider did not answer in time", "timeout")
    # Then it is neither failed nor sent: still awaiting its outcome, with the call known made
    assert (comm.status, comm.attempts, comm.call_made) == (CommStatus.SENDING, 1, True)
    # And reconciliation can still settle it either way
    comm.accept(1, T0, "SM1")
    assert comm.status == CommStatus.SENT
    assert not comm.call_made


def test_an_unknown_outcome_is_refused_for_an_attempt_not_under_way() -> None:
    with pytest.raises(DomainError):
        sent().outcome_unknown(1, T0, "lost", "timeout")
