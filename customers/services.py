"""Writes for customers and outcomes.

All paths (single API upsert, bulk upsert, file import) take records already validated by
churn_ml.schema, so the contract's rules live in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from django.db import transaction
from django.utils import timezone

from accounts.services import SYSTEM, Actor, audit_record
from churn_ml.record import RecordCheck
from churn_ml.schema import FIELD_ORDER, ValidationResult
from customers.models import Customer, Outcome
from customers.signals import RecordedOutcome, outcomes_recorded

# Rows per INSERT statement: 1,000 rows x 26 columns stays far below SQLite's and PostgreSQL's
# parameter limits and measured fastest with bulk_create here.
WRITE_BATCH_SIZE = 1000
_WRITE_FIELDS = (*FIELD_ORDER, "quality_completeness", "quality_warnings", "source", "updated_at")


@dataclass
class UpsertCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    created_ids: list[str] = field(default_factory=list)
    updated_ids: list[str] = field(default_factory=list)

    def add(self, other: UpsertCounts) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.created_ids += other.created_ids
        self.updated_ids += other.updated_ids


def duplicate_rows(result: ValidationResult, rows: Sequence[int]) -> dict[int, int]:
    """Rows whose customer_id appears again later among ``rows``: {earlier row: the later row}.

    The last occurrence wins, as if the records had been sent one after another.
    """
    last: dict[str, int] = {}
    superseded: dict[int, int] = {}
    ids = result.columns["customer_id"]
    for i in rows:
        cid = ids[i]
        if cid in last:
            superseded[last[cid]] = i
        last[cid] = i
    return superseded


def _same(existing: dict[str, Any], record: dict[str, Any]) -> bool:
    for name in FIELD_ORDER:
        a, b = existing[name], record[name]
        if a != b and not (a is None and b is None):
            return False
    return True


def customers_upsert_validated(
    *, result: ValidationResult, rows: Sequence[int], source: str, completeness: np.ndarray | None = None
) -> UpsertCounts:
    """Store the given valid rows of a validation result, creating or updating by customer_id.

    ``rows`` must hold each customer_id once (see duplicate_rows). Unchanged customers are
    counted and not written, so re-sending the same data leaves updated_at alone.
    """
    counts = UpsertCounts()
    if len(rows) == 0:
        return counts
    completeness = result.completeness() if completeness is None else completeness
    records = []
    for i in rows:
        record = result.record(i)
        record["quality_completeness"] = round(float(completeness[i]), 2)
        record["quality_warnings"] = result.warnings.get(i, [])
        records.append(record)
    for start in range(0, len(records), WRITE_BATCH_SIZE):
        counts.add(_upsert_batch(records[start : start + WRITE_BATCH_SIZE], source))
    return counts


def _upsert_batch(records: list[dict[str, Any]], source: str) -> UpsertCounts:
    counts = UpsertCounts()
    ids = [r["customer_id"] for r in records]
    existing = {
        row["customer_id"]: row
        for row in Customer.objects.filter(customer_id__in=ids).values("customer_id", *FIELD_ORDER, "quality_warnings")
    }
    to_write = []
    now = timezone.now()
    for record in records:
        before = existing.get(record["customer_id"])
        if before is None:
            counts.created += 1
            counts.created_ids.append(record["customer_id"])
        elif _same(before, record) and before["quality_warnings"] == record["quality_warnings"]:
            counts.unchanged += 1
            continue
        else:
            counts.updated += 1
            counts.updated_ids.append(record["customer_id"])
        to_write.append(Customer(**record, source=source, created_at=now, updated_at=now))
    if to_write:
        Customer.objects.bulk_create(
            to_write,
            update_conflicts=True,
            unique_fields=["customer_id"],
            update_fields=list(_WRITE_FIELDS),
        )
    return counts


@transaction.atomic
def customer_upsert(*, check: RecordCheck, source: str, actor: Actor = SYSTEM) -> tuple[Customer, bool]:
    """Create or update the customer of a valid single record; returns (customer, created)."""
    record = dict(check.record)
    customer_id = record.pop("customer_id")
    defaults = {
        **record,
        "quality_completeness": round(check.completeness, 2),
        "quality_warnings": check.warnings,
        "source": source,
    }
    customer, created = Customer.objects.select_for_update().update_or_create(
        customer_id=customer_id, defaults=defaults
    )
    audit_record(
        actor=actor,
        action="customer.create" if created else "customer.update",
        obj=customer,
        object_id=customer.customer_id,
        details={"source": source},
    )
    return customer, created


def customers_bulk_upsert(
    *, result: ValidationResult, source: str, actor: Actor = SYSTEM
) -> tuple[UpsertCounts, dict[int, dict[str, list[str]]]]:
    """Store every valid record of a batch in one transaction; return counts and per-row errors.

    Invalid rows and rows superseded by a later record for the same customer are reported, never
    silently dropped; the valid ones are stored regardless.
    """
    errors = dict(result.errors)
    valid_rows = [int(i) for i in np.flatnonzero(result.valid)]
    superseded = duplicate_rows(result, valid_rows)
    for earlier, later in superseded.items():
        errors[earlier] = {
            "customer_id": [f"Appears again later in this batch (index {later}); the later record was used."]
        }
    rows = [i for i in valid_rows if i not in superseded]
    with transaction.atomic():
        counts = customers_upsert_validated(result=result, rows=rows, source=source)
        audit_record(
            actor=actor,
            action="customer.bulk_upsert",
            object_type="customers.customer",
            details={
                "source": source,
                "created": counts.created,
                "updated": counts.updated,
                "unchanged": counts.unchanged,
                "rejected": len(errors),
            },
        )
    return counts, errors


class UnknownCustomer(Exception):
    pass


@transaction.atomic
def outcome_record(
    *, customer_id: str, churned: bool, observed_at: datetime, source: str, actor: Actor = SYSTEM
) -> tuple[Outcome, bool]:
    """Record what happened to a customer; the same observation recorded twice is updated, not doubled."""
    customer = Customer.objects.filter(customer_id=customer_id).first()
    if customer is None:
        raise UnknownCustomer(customer_id)
    outcome, created = Outcome.objects.update_or_create(
        customer=customer,
        observed_at=observed_at,
        source=source,
        defaults={"churned": churned, "recorded_by": actor.label},
    )
    audit_record(
        actor=actor,
        action="outcome.record",
        obj=outcome,
        details={"customer_id": customer_id, "churned": churned, "observed_at": observed_at.isoformat()},
    )
    # A recorded outcome also settles the customer's campaign follow-ups, in this same transaction.
    from campaigns.services import campaign_targets_apply_outcomes

    campaign_targets_apply_outcomes(customer_ids=[customer_id], actor=actor)
    _announce([RecordedOutcome(customer_id, churned, observed_at)], "api")
    return outcome, created


def _announce(outcomes: list[RecordedOutcome], source: str) -> None:
    """Send outcomes_recorded once the current transaction commits (at once outside one)."""
    if outcomes:
        transaction.on_commit(
            lambda: outcomes_recorded.send(sender="customers", outcomes=outcomes, source=source)
        )


def outcomes_bulk_record(*, labels: dict[str, bool], observed_at: datetime, source: str) -> int:
    """Record many outcomes at once (file imports); an observation already stored is updated."""
    ids = dict(Customer.objects.filter(customer_id__in=list(labels)).values_list("customer_id", "pk"))
    objs = [
        Outcome(customer_id=pk, churned=labels[cid], observed_at=observed_at, source=source, recorded_by=source)
        for cid, pk in ids.items()
    ]
    Outcome.objects.bulk_create(
        objs,
        batch_size=WRITE_BATCH_SIZE,
        update_conflicts=True,
        unique_fields=["customer", "observed_at", "source"],
        update_fields=["churned", "updated_at"],
    )
    from campaigns.services import campaign_targets_apply_outcomes

    campaign_targets_apply_outcomes(customer_ids=list(ids))
    _announce([RecordedOutcome(cid, labels[cid], observed_at) for cid in ids], "file")
    return len(objs)
