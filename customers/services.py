"""Writes for customers and outcomes (outcomes_record is the one path every outcome takes).

Over 500 lines on purpose (about 500): the app's two write paths, customers and outcomes, each with
a PostgreSQL bulk path and a portable one.

All paths (single API upsert, bulk upsert, file import) take records already validated by
churn_ml.schema, so the contract's rules live in one place.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, overload

import numpy as np
from django.db import connection, transaction
from django.utils import timezone

from accounts.services import SYSTEM, Actor, audit_insert_select, audit_record
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
        department_id=actor.department_id,
        details={"source": source, "department": actor.department_name or None},
    )
    return customer, created


# The customer a scoring call carries, written in one statement on PostgreSQL: created, updated
# only when a field differs (a CRM re-scoring the same record rewrites nothing), and the id and
# whether it was new returned. update_or_create took a SELECT ... FOR UPDATE, an UPDATE of every
# column and two savepoints: about 3 ms of a 6 ms scoring call here.
_SCORED_COLUMNS = (*FIELD_ORDER, "quality_completeness", "quality_warnings")
_SCORED_UPSERT_SQL = (
    "INSERT INTO {table} (customer_id, {columns}, source, created_at, updated_at) "
    "VALUES (%s, {values}, %s, %s, %s) "
    "ON CONFLICT (customer_id) DO UPDATE SET {updates}, source = EXCLUDED.source, updated_at = EXCLUDED.updated_at "
    "WHERE ({current}) IS DISTINCT FROM ({incoming}) "
    "RETURNING (xmax = 0) AS created"
)


@functools.cache
def _scored_upsert_sql() -> str:
    table = connection.ops.quote_name(Customer._meta.db_table)
    quoted = [connection.ops.quote_name(c) for c in _SCORED_COLUMNS]
    values = ", ".join("%s::jsonb" if c == "quality_warnings" else "%s" for c in _SCORED_COLUMNS)
    return _SCORED_UPSERT_SQL.format(
        table=table,
        columns=", ".join(quoted),
        values=values,
        updates=", ".join(f"{q} = EXCLUDED.{q}" for q in quoted),
        current=", ".join(f"{table}.{q}" for q in quoted),
        incoming=", ".join(f"EXCLUDED.{q}" for q in quoted),
    )


def customer_upsert_scored_cte(*, check: RecordCheck, source: str, actor: Actor = SYSTEM) -> tuple[str, list[Any]]:
    """``WITH upserted AS (...), audited AS (...)`` and its parameters (PostgreSQL): the customer
    of a scoring call and its audit entry, for the caller to finish with its own statement
    (the prediction's INSERT) so that all three cost one round trip and one transaction.

    ``upserted`` has one row, ``created``, when the customer was created or changed, and none when
    the record is unchanged (then no audit entry either).
    """
    record = check.record
    now = timezone.now()
    params = [
        record["customer_id"],
        *(record[name] for name in FIELD_ORDER),
        round(check.completeness, 2),
        json.dumps(check.warnings),
        source,
        now,
        now,
    ]
    audit_sql, audit_params = audit_insert_select(
        source="upserted", actions=("created", "customer.create", "customer.update"), actor=actor,
        object_type=Customer._meta.label_lower, object_id=record["customer_id"], department_id=actor.department_id,
        details={"source": source, "department": actor.department_name or None},
    )  # fmt: skip
    return f"WITH upserted AS ({_scored_upsert_sql()}), audited AS ({audit_sql}) ", [*params, *audit_params]


def customer_upsert_scored(*, check: RecordCheck, source: str, actor: Actor = SYSTEM) -> str:
    """Store the customer of a record sent for scoring; returns "created", "updated" or "unchanged".

    The same checks and quality report as customer_upsert; an unchanged record writes nothing and
    no audit entry (its prediction records the call). The ORM's way, for databases other than
    PostgreSQL: there a scoring call writes the customer with customer_upsert_scored_cte, inside its
    prediction's statement.
    """
    with transaction.atomic():
        record = dict(check.record)
        customer_id = record.pop("customer_id")
        existing = Customer.objects.filter(customer_id=customer_id).values(*FIELD_ORDER, "quality_warnings").first()
        if existing is not None and _same(existing, record) and existing["quality_warnings"] == check.warnings:
            return "unchanged"
        _, created = customer_upsert(check=check, source=source, actor=actor)
    return "created" if created else "updated"


def customers_bulk_upsert(
    *, result: ValidationResult, source: str, actor: Actor = SYSTEM, rows: Sequence[int] | None = None
) -> tuple[UpsertCounts, dict[int, dict[str, list[str]]]]:
    """Store every valid record of a batch (or of ``rows`` of it) in one transaction; return counts
    and per-row errors.

    Invalid rows and rows superseded by a later record for the same customer are reported, never
    silently dropped; the valid ones are stored regardless.
    """
    errors = dict(result.errors)
    valid = result.valid
    valid_rows = [int(i) for i in np.flatnonzero(valid)] if rows is None else [int(i) for i in rows if valid[i]]
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
            department_id=actor.department_id,
            details={
                "source": source,
                "department": actor.department_name or None,
                "created": counts.created,
                "updated": counts.updated,
                "unchanged": counts.unchanged,
                "rejected": len(errors),
            },
        )
    return counts, errors


class UnknownCustomer(Exception):
    pass


# --- outcomes -------------------------------------------------------------------------------
#
# Every outcome, whatever brought it (POST outcomes/, outcomes/bulk/, a file or data source's
# churn labels, a stream event, the admin), is written by outcomes_record: stored, audited in the
# same transaction, and announced once after commit with the outcomes_recorded event, to which
# campaigns (follow-ups) and the model registry (live accuracy) subscribe.

OUTCOME_CHANNELS = frozenset({"api", "bulk", "file", "source", "stream", "admin"})


class OutcomeInput(NamedTuple):
    customer_id: str
    churned: bool
    observed_at: datetime  # aware
    source: str  # Outcome.source: who observed it ("crm", "api", "<file>:<sha>", "stream:<name>")


class OutcomeColumns(Sequence[OutcomeInput]):
    """Outcomes observed at one time by one source, held as columns: an ingestion chunk's churn
    labels. outcomes_record reads them without building an object per item (a 40,000-label chunk
    saves ~0.2 s of the ingestion worker's CPU); indexing still gives OutcomeInput."""

    __slots__ = ("churned", "customer_ids", "observed_at", "source")

    def __init__(self, customer_ids: list[str], churned: list[bool], observed_at: datetime, source: str) -> None:
        if len(customer_ids) != len(churned):
            raise ValueError("customer_ids and churned differ in length")
        self.customer_ids, self.churned, self.observed_at, self.source = customer_ids, churned, observed_at, source

    def __len__(self) -> int:
        return len(self.customer_ids)

    @overload
    def __getitem__(self, i: int) -> OutcomeInput: ...
    @overload
    def __getitem__(self, i: slice) -> OutcomeColumns: ...
    def __getitem__(self, i: int | slice) -> OutcomeInput | OutcomeColumns:
        if isinstance(i, slice):
            return OutcomeColumns(self.customer_ids[i], self.churned[i], self.observed_at, self.source)
        return OutcomeInput(self.customer_ids[i], bool(self.churned[i]), self.observed_at, self.source)


@dataclass
class OutcomesWritten:
    """What outcomes_record did, by input index: stored, unchanged, or refused."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    unknown: list[int] = field(default_factory=list)  # indexes whose customer is not stored
    superseded: dict[int, int] = field(default_factory=dict)  # earlier index -> the later one that replaced it
    recorded: list[RecordedOutcome] = field(default_factory=list)  # created or updated, as announced
    outcome_ids: dict[int, int] = field(default_factory=dict)  # index -> Outcome pk, for created and updated


@transaction.atomic
def outcomes_record(
    *,
    outcomes: Sequence[OutcomeInput],
    channel: str,
    actor: Actor = SYSTEM,
    only_changes: bool = False,
    audit_details: dict[str, Any] | None = None,
    new_customers: Collection[str] = (),
) -> OutcomesWritten:
    """Store outcomes, write one audit entry and, after commit, send one ``outcomes_recorded`` event.

    An observation is one (customer, observed_at, source). Recording it again with the same
    ``churned`` is counted as unchanged and writes nothing; with the other value it is updated.
    Within one call the last item for an observation wins and earlier ones are reported as
    superseded. ``only_changes`` (ingestion's rule for churn labels) also counts as unchanged a
    label equal to the customer's latest recorded outcome, so re-importing a file adds nothing.
    Items naming a customer that is not stored are reported in ``unknown`` and not written.
    ``new_customers`` names customers created in the caller's transaction, so with no outcome yet
    (an ingestion chunk's new rows): their latest-outcome lookup is skipped.
    """
    if channel not in OUTCOME_CHANNELS:
        raise ValueError(f"Unknown outcome channel {channel!r}")
    written = OutcomesWritten()
    rows = _distinct_columns(outcomes) if isinstance(outcomes, OutcomeColumns) else None
    if rows is None:
        last: dict[tuple[str, datetime, str], int] = {}
        for i, item in enumerate(outcomes):
            if "," in item.customer_id:  # never a stored customer (the contract's id pattern has no comma)
                written.unknown.append(i)
                continue
            key = (item.customer_id, item.observed_at, item.source)
            if key in last:
                written.superseded[last[key]] = i
            last[key] = i
        rows = list(last.values())
    if rows:
        store = _outcomes_store_postgres if connection.vendor == "postgresql" else _outcomes_store_portable
        store(outcomes, rows, written, recorded_by=actor.label[:200], only_changes=only_changes, new=new_customers)
    stored = written.created + written.updated
    written.unchanged = len(outcomes) - len(written.superseded) - len(written.unknown) - stored
    single = len(outcomes) == 1 and written.outcome_ids
    audit_record(
        actor=actor,
        action="outcome.record" if len(outcomes) == 1 else "outcome.bulk_record",
        object_type="customers.outcome",
        object_id=next(iter(written.outcome_ids.values())) if single else "",
        department_id=actor.department_id,
        details={
            "channel": channel,
            "department": actor.department_name or None,
            **(
                {"customer_id": outcomes[0].customer_id, "churned": outcomes[0].churned,
                 "observed_at": outcomes[0].observed_at.isoformat()}
                if len(outcomes) == 1 else {}
            ),
            "created": written.created,
            "updated": written.updated,
            "unchanged": written.unchanged,
            "rejected": len(written.unknown) + len(written.superseded),
            **(audit_details or {}),
        },
    )  # fmt: skip
    if written.recorded:
        recorded = list(written.recorded)
        transaction.on_commit(
            lambda: outcomes_recorded.send(sender="customers", outcomes=recorded, source=channel), robust=True
        )
    return written


def _distinct_columns(outcomes: OutcomeColumns) -> list[int] | None:
    """Every item, when no two name the same customer (one time, one source: the same observation)
    and none names an impossible one; else None, for outcomes_record's item by item rules."""
    ids = outcomes.customer_ids
    if len(set(ids)) == len(ids) and "," not in "".join(ids):
        return list(range(len(ids)))
    return None


# Outcomes per statement: each statement well under a second, its parameters a few hundred kB.
_OUTCOME_BATCH = 20_000
# One statement per batch. The items travel as a few strings split in the database (customer ids
# hold no comma: the contract's id pattern) and the distinct times and sources as small arrays
# indexed per item, so a 100,000-label chunk costs no per-item parameter adaptation in Python.
# Items are joined to their customers one index probe each (a hash join would read the whole
# customer table per batch; its statistics lag behind a bulk load); unknown ones come back with a
# null outcome id. Customers created in the caller's transaction (flagged ``n``) have no outcome
# yet: theirs are plain inserts, no latest-outcome lookup and no speculative ON CONFLICT insert
# (a third faster). For the others a label equal to the latest outcome is left out when asked,
# and the rest are inserted or updated.
_OUTCOMES_UPSERT = """
WITH v AS (
    SELECT v.idx::int4 AS idx, (SELECT c.id FROM customers_customer c WHERE c.customer_id = v.customer_id) AS pk,
           v.churned = '1' AS churned, v.n = '1' AS new,
           (%(times)s::timestamptz[])[v.t::int4] AS observed_at, (%(sources)s::text[])[v.s::int4] AS source
    FROM unnest(string_to_array(%(idx)s, ','), string_to_array(%(ids)s, ','), string_to_array(%(churned)s, ','),
                string_to_array(%(t)s, ','), string_to_array(%(s)s, ','), string_to_array(%(n)s, ','))
         AS v(idx, customer_id, churned, t, s, n)
), first AS (
    INSERT INTO customers_outcome (customer_id, churned, observed_at, source, recorded_by, created_at, updated_at)
    SELECT pk, churned, observed_at, source, %(by)s, %(now)s, %(now)s FROM v WHERE pk IS NOT NULL AND new
    RETURNING id, customer_id, observed_at, source, true AS created
), later AS (
    INSERT INTO customers_outcome (customer_id, churned, observed_at, source, recorded_by, created_at, updated_at)
    SELECT pk, churned, observed_at, source, %(by)s, %(now)s, %(now)s FROM v
    WHERE pk IS NOT NULL AND NOT new AND (NOT %(only_changes)s OR (
        SELECT o.churned FROM customers_outcome o WHERE o.customer_id = v.pk
        ORDER BY o.observed_at DESC, o.id DESC LIMIT 1) IS DISTINCT FROM v.churned)
    ON CONFLICT (customer_id, observed_at, source) DO UPDATE
        SET churned = EXCLUDED.churned, recorded_by = EXCLUDED.recorded_by, updated_at = EXCLUDED.updated_at
        WHERE customers_outcome.churned IS DISTINCT FROM EXCLUDED.churned
    RETURNING id, customer_id, observed_at, source, (xmax = 0) AS created
), w AS (SELECT * FROM first UNION ALL SELECT * FROM later)
SELECT v.idx, v.pk IS NULL, w.id, w.created
FROM v LEFT JOIN w ON w.customer_id = v.pk AND w.observed_at = v.observed_at AND w.source = v.source
WHERE v.pk IS NULL OR w.id IS NOT NULL
"""


def _outcomes_store_postgres(
    outcomes: Sequence[OutcomeInput],
    rows: list[int],
    written: OutcomesWritten,
    *,
    recorded_by: str,
    only_changes: bool,
    new: Collection[str],
) -> None:
    now = timezone.now()
    with connection.cursor() as cursor:
        # The statement's estimated cost crosses jit_above_cost, and compiling it (~250 ms) costs
        # more than running it; off for these statements only (SET LOCAL: reset at commit at the latest).
        cursor.execute("SELECT current_setting('jit'), set_config('jit', 'off', true)")
        jit = cursor.fetchone()[0]
        for start in range(0, len(rows), _OUTCOME_BATCH):
            batch = rows[start : start + _OUTCOME_BATCH]
            cursor.execute(
                _OUTCOMES_UPSERT,
                {
                    "idx": ",".join(map(str, batch)),
                    **_batch_columns(outcomes, batch, new),
                    "by": recorded_by,
                    "now": now,
                    "only_changes": only_changes,
                },
            )
            if isinstance(outcomes, OutcomeColumns):
                _count_columns(written, outcomes, cursor.fetchall())
                continue
            for idx, unknown, outcome_id, created in cursor.fetchall():
                _count(written, outcomes, idx, unknown=unknown, outcome_id=outcome_id, created=created)
        cursor.execute("SELECT set_config('jit', %s, true)", [jit])


def _batch_columns(outcomes: Sequence[OutcomeInput], batch: list[int], new: Collection[str]) -> dict[str, Any]:
    """A batch's items as _OUTCOMES_UPSERT's strings: ids, labels, new flags, and indexes (from 1,
    as PostgreSQL arrays count) into its distinct observation times and sources."""
    if isinstance(outcomes, OutcomeColumns):
        ids = [outcomes.customer_ids[i] for i in batch]
        churned = [outcomes.churned[i] for i in batch]
        times, sources = [outcomes.observed_at], [outcomes.source]
        t = s = ",".join(["1"] * len(batch))
    else:
        items = [outcomes[i] for i in batch]
        ids, churned = [o.customer_id for o in items], [o.churned for o in items]
        time_at: dict[datetime, int] = {}
        source_at: dict[str, int] = {}
        t = ",".join(str(time_at.setdefault(o.observed_at, len(time_at) + 1)) for o in items)
        s = ",".join(str(source_at.setdefault(o.source, len(source_at) + 1)) for o in items)
        times, sources = list(time_at), list(source_at)
    return {
        "ids": ",".join(ids),
        "churned": ",".join(["1" if c else "0" for c in churned]),
        "n": ",".join(["1" if cid in new else "0" for cid in ids]) if new else ",".join(["0"] * len(ids)),
        "t": t,
        "s": s,
        "times": times,
        "sources": sources,
    }


def _outcomes_store_portable(
    outcomes: Sequence[OutcomeInput],
    rows: list[int],
    written: OutcomesWritten,
    *,
    recorded_by: str,
    only_changes: bool,
    new: Collection[str],
) -> None:
    """The same rules through the ORM, for SQLite (``make run``); ``new`` changes nothing here."""
    for start in range(0, len(rows), _OUTCOME_BATCH):
        batch = rows[start : start + _OUTCOME_BATCH]
        pks = dict(
            Customer.objects.filter(customer_id__in={outcomes[i].customer_id for i in batch}).values_list(
                "customer_id", "pk"
            )
        )
        latest: dict[int, bool] = {}
        stored: dict[tuple[int, datetime, str], tuple[int, bool]] = {}
        for pk, customer_pk, observed_at, source, churned in (
            Outcome.objects.filter(customer_id__in=list(pks.values()))
            .order_by("customer_id", "-observed_at", "-pk")
            .values_list("pk", "customer_id", "observed_at", "source", "churned")
        ):
            latest.setdefault(customer_pk, churned)
            stored[customer_pk, observed_at, source] = (pk, churned)
        for i in batch:
            item = outcomes[i]
            customer_pk = pks.get(item.customer_id)
            if customer_pk is None:
                _count(written, outcomes, i, unknown=True)
                continue
            if only_changes and latest.get(customer_pk) == item.churned:
                continue
            before = stored.get((customer_pk, item.observed_at, item.source))
            if before is None:
                outcome = Outcome.objects.create(
                    customer_id=customer_pk, churned=item.churned, observed_at=item.observed_at,
                    source=item.source, recorded_by=recorded_by,
                )  # fmt: skip
                _count(written, outcomes, i, outcome_id=outcome.pk, created=True)
            elif before[1] != item.churned:
                Outcome.objects.filter(pk=before[0]).update(
                    churned=item.churned, recorded_by=recorded_by, updated_at=timezone.now()
                )
                _count(written, outcomes, i, outcome_id=before[0], created=False)


def _count_columns(
    written: OutcomesWritten, outcomes: OutcomeColumns, fetched: list[tuple[int, bool, int, bool]]
) -> None:
    """_count for a batch of columns, in one loop (a fresh file's chunk records every label)."""
    ids, churned, observed_at = outcomes.customer_ids, outcomes.churned, outcomes.observed_at
    recorded, outcome_ids = written.recorded, written.outcome_ids
    stored = created = 0
    for idx, unknown, outcome_id, was_created in fetched:
        if unknown:
            written.unknown.append(idx)
            continue
        stored += 1
        created += was_created
        outcome_ids[idx] = outcome_id
        recorded.append(RecordedOutcome(ids[idx], bool(churned[idx]), observed_at))
    written.created += created
    written.updated += stored - created


def _count(
    written: OutcomesWritten,
    outcomes: Sequence[OutcomeInput],
    i: int,
    *,
    unknown: bool = False,
    outcome_id: int | None = None,
    created: bool = False,
) -> None:
    if unknown:
        written.unknown.append(i)
        return
    item = outcomes[i]
    written.created += int(created)
    written.updated += int(not created)
    written.outcome_ids[i] = outcome_id or 0
    written.recorded.append(RecordedOutcome(item.customer_id, bool(item.churned), item.observed_at))


def outcome_record(
    *, customer_id: str, churned: bool, observed_at: datetime, source: str, channel: str = "api", actor: Actor = SYSTEM
) -> tuple[Outcome, bool]:
    """Record one outcome through outcomes_record; returns (outcome, created). Raises UnknownCustomer."""
    with transaction.atomic():
        written = outcomes_record(
            outcomes=[OutcomeInput(customer_id, churned, observed_at, source)], channel=channel, actor=actor
        )
        if written.unknown:
            raise UnknownCustomer(customer_id)
    outcome = Outcome.objects.select_related("customer").get(
        customer__customer_id=customer_id, observed_at=observed_at, source=source
    )
    return outcome, written.created == 1
