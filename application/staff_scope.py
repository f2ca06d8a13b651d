"""Which patients an acting user may see: the groups rule of the staff boundary, shared by
the campaigns facade and its editor (application/staff_campaigns.py,
application/staff_campaign_editor.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from domain.access import Actor
from domain.lists import ListQuery, Scope
from projections.db import Database
from projections.patient_queries import Compiler, resolve_scope
from projections.patients import ID_BATCH, batches, placeholders


def patients_in_scope(db: Database, actor: Actor, ids: Sequence[str]) -> set[str]:
    """Which of `ids` the actor may see: every one for All Subscribers; else those related
    (PCP, appointment or billing) to an active provider of the actor's groups — the relation
    SQL of PatientQueries.scope. A user in no group sees nobody."""
    chosen = list(dict.fromkeys(ids))
    if actor.sees_all:
        return set(chosen)
    if not actor.groups or not chosen:
        return set()
    query = ListQuery(scope=Scope(groups=tuple(actor.groups)))
    found: set[str] = set()
    with db.transaction() as tx:
        providers = resolve_scope(tx, query) or []
        relation = Compiler(db.dialect, date.min).scope(query, providers)
        for chunk in batches(chosen, ID_BATCH):
            found.update(str(r[0]) for r in tx.fetchall(
                f"SELECT p.patient_id FROM patients p WHERE p.patient_id IN"
                f" ({placeholders(len(chunk))}) AND {relation.text}",
                [*chunk, *relation.params]))
    return found
