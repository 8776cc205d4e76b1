"""Settling targets from recorded customer outcomes (the one path from outcomes_recorded)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from accounts.services import SYSTEM, Actor
from campaigns.models import (
    CampaignTarget,
    OutcomeSource,
    TargetOutcome,
)
from campaigns.services.common import (
    ENROL_BATCH_SIZE,
    _audit_many,
)
from customers.models import Customer, Outcome

# Customer ids per settling task message, and targets per locked batch when settling: keeps each row lock set small.
OUTCOME_BATCH_SIZE = 5000


@transaction.atomic
def campaign_targets_apply_outcomes(*, customer_ids: Sequence[str], actor: Actor = SYSTEM) -> int:
    """Fill targets' outcomes from the customers' recorded outcomes; returns how many changed.

    The latest outcome observed at or after a customer's enrolment decides: churned or retained.
    An outcome observed before the enrolment says nothing about the campaign and is ignored.
    Run by the apply_recorded_outcomes task that the outcomes_recorded event queues
    (campaigns.receivers); applying it twice changes nothing. Customers who are nobody's target
    (most of a file import's) cost one indexed lookup and nothing more.
    """
    pks = _target_pks(list(dict.fromkeys(customer_ids)))
    return sum(
        _targets_apply_outcomes(pks[i : i + OUTCOME_BATCH_SIZE], actor=actor)
        for i in range(0, len(pks), OUTCOME_BATCH_SIZE)
    )


# The targets of some customers, named by customer id. One array rather than an IN list: Django
# compiling a 5,000-id IN list costs more than the query (~150 ms against a few ms). The ids travel
# as one string split in the database (a stored customer id holds no comma: the contract's pattern).
_TARGETS_OF_CUSTOMERS = (
    f"SELECT t.id FROM {CampaignTarget._meta.db_table} t JOIN {Customer._meta.db_table} c ON c.id = t.customer_id"  # noqa: S608
    " WHERE c.customer_id = ANY(string_to_array(%s, ',')) ORDER BY t.id"
)


def _target_pks(ids: list[str]) -> list[int]:
    if not ids:
        return []
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_TARGETS_OF_CUSTOMERS, [",".join(i for i in ids if "," not in i)])
            return [pk for (pk,) in cursor.fetchall()]
    return sorted(
        pk
        for start in range(0, len(ids), OUTCOME_BATCH_SIZE)  # SQLite's parameter limit
        for pk in CampaignTarget.objects.filter(
            customer__customer_id__in=ids[start : start + OUTCOME_BATCH_SIZE]
        ).values_list("pk", flat=True)
    )


def _targets_apply_outcomes(pks: list[int], *, actor: Actor) -> int:
    targets = list(
        CampaignTarget.objects.select_for_update(of=("self",))
        .filter(pk__in=pks)
        .select_related("campaign")
        .order_by("pk")
    )
    if not targets:
        return 0
    outcomes: dict[int, list[tuple[datetime, bool]]] = {}
    for customer_pk, observed_at, churned in (
        Outcome.objects.filter(customer_id__in={t.customer_id for t in targets})
        .order_by("customer_id", "-observed_at", "-pk")
        .values_list("customer_id", "observed_at", "churned")
    ):
        outcomes.setdefault(customer_pk, []).append((observed_at, churned))
    entries: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    changed = []
    now = timezone.now()
    for target in targets:
        latest = next((o for o in outcomes.get(target.customer_id, []) if o[0] >= target.created_at), None)
        if latest is None:
            continue
        observed_at, churned = latest
        value = TargetOutcome.CHURNED if churned else TargetOutcome.RETAINED
        if (
            target.outcome == value
            and target.outcome_source == OutcomeSource.RECORDED
            and target.outcome_at == observed_at
        ):
            continue
        entries.setdefault(target.campaign.department_id, []).append(
            (
                target.pk,
                {
                    "campaign_id": target.campaign_id,
                    "observed_at": observed_at.isoformat(),
                    "changes": {"outcome": [target.outcome, value]},
                    "source": OutcomeSource.RECORDED,
                },
            )
        )
        target.outcome, target.outcome_source, target.outcome_at = value, OutcomeSource.RECORDED, observed_at
        target.updated_at = now  # bulk_update leaves auto_now fields alone
        changed.append(target)
    if changed:
        CampaignTarget.objects.bulk_update(
            changed, ["outcome", "outcome_source", "outcome_at", "updated_at"], batch_size=ENROL_BATCH_SIZE
        )
    for department_id, items in entries.items():
        _audit_many(actor=actor, action="campaign_target.outcome", department_id=department_id, entries=items)
    return len(changed)
