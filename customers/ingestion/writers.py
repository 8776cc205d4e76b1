"""Storing a validated chunk of customers, counted by what changed (its churn labels are
recorded by customers.services.outcomes_record, in the same transaction).

On PostgreSQL the chunk is copied into a temporary staging table with binary COPY and merged
with one ``INSERT ... ON CONFLICT (customer_id) DO UPDATE ... WHERE <row differs>``: rows it
inserts come back with ``xmax = 0``, rows it updates with their new xmax, and unchanged rows do
not come back at all, which gives the created / updated / unchanged counts without reading the
table first. The COPY buffer is built with numpy: every column is fixed width (enumerations as
their code, nulls as NaN or code 0), customer ids grouped by length, so a 100,000-row chunk is
encoded in a few milliseconds. Elsewhere (SQLite for ``make run``) the ORM path of
customers.services does the same job more slowly.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import numpy as np
from django.db import IntegrityError, connection, transaction

from churn_ml.schema import BOOL_FIELDS, ENUM_FIELDS, FIELD_ORDER, ValidationResult
from customers.models import Customer
from customers.services import customers_upsert_validated

# Ids per query when the ORM path looks customers up; SQLite allows 32,766 parameters.
_LOOKUP_BATCH = 5_000


@dataclass
class WriteOutcome:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    changed_ids: list[str] = field(default_factory=list)
    watched: dict[str, str] = field(default_factory=dict)  # customer_id -> created / updated / unchanged
    before: dict[str, dict[str, Any]] = field(default_factory=dict)  # watched customers as stored before


@dataclass
class ChunkWrite:
    """What a writer stores: ``rows`` of ``result`` (each customer once)."""

    result: ValidationResult
    rows: np.ndarray
    completeness: np.ndarray
    source: str
    now: datetime
    want_ids: bool = False
    watch: Collection[str] = ()


def stored_before(ids: Collection[str]) -> dict[str, dict[str, Any]]:
    """The stored state of these customers, read before a write replaces it."""
    if not ids:
        return {}
    fields = ("customer_id", *FIELD_ORDER, "quality_completeness", "quality_warnings", "created_at", "updated_at")
    out: dict[str, dict[str, Any]] = {}
    ids = list(ids)
    for start in range(0, len(ids), _LOOKUP_BATCH):
        for row in Customer.objects.filter(customer_id__in=ids[start : start + _LOOKUP_BATCH]).values(*fields):
            out[row["customer_id"]] = row
    return out


class Writer(Protocol):
    def write(self, job: ChunkWrite) -> WriteOutcome: ...


def writer_for_connection() -> Writer:
    """COPY on PostgreSQL, the ORM elsewhere (SQLite for ``make run``)."""
    return PostgresWriter() if connection.vendor == "postgresql" else PortableWriter()


class PortableWriter:
    """Any database Django supports, through customers.services and bulk_create."""

    def write(self, job: ChunkWrite) -> WriteOutcome:
        out = WriteOutcome(before=stored_before(job.watch))
        counts = customers_upsert_validated(
            result=job.result, rows=[int(i) for i in job.rows], source=job.source, completeness=job.completeness
        )
        out.created, out.updated, out.unchanged = counts.created, counts.updated, counts.unchanged
        if job.want_ids:
            out.changed_ids = counts.created_ids + counts.updated_ids
        if job.watch:
            created, updated = set(counts.created_ids), set(counts.updated_ids)
            out.watched = {
                cid: "created" if cid in created else "updated" if cid in updated else "unchanged" for cid in job.watch
            }
        return out


# --- PostgreSQL -----------------------------------------------------------------------------

_NUMBERS = ("monthly_charges", "total_charges", "age", "income", "quality_completeness")
_ENUMS = tuple(ENUM_FIELDS)
_STAGE = "churn_ingest_stage"
_STAGE_WARNINGS = "churn_ingest_stage_warnings"
_STAGE_COLUMNS = (
    ("idx", "int4"),
    ("customer_id", "text"),
    *((name, "bool") for name in BOOL_FIELDS),
    ("tenure_months", "int2"),
    *((name, "int2") for name in _ENUMS),
    *((name, "float8") for name in _NUMBERS),
)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_COPY_TRAILER = b"\xff\xff"
_NUMPY_TYPE = {"int4": ">i4", "int2": ">i2", "bool": "?", "float8": ">f8"}
_WIDTH = {"int4": 4, "int2": 2, "bool": 1, "float8": 8}


def _value_sql(name: str) -> str:
    if name in ENUM_FIELDS:
        # Code 0 is "none": a PostgreSQL array subscript out of range is NULL.
        values = ",".join("'" + v.replace("'", "''") + "'" for v in ENUM_FIELDS[name])
        return f"(ARRAY[{values}]::varchar[])[s.{name}]"
    if name in ("total_charges", "income"):
        return f"NULLIF(s.{name}, 'NaN')"
    if name == "age":
        return "NULLIF(s.age, 'NaN')::int2"
    return f"s.{name}"


_WRITTEN = (*FIELD_ORDER, "quality_completeness", "quality_warnings", "source", "created_at", "updated_at")
_COMPARED = (*FIELD_ORDER, "quality_warnings")
# Statements are assembled from the constant column names above; values travel as parameters.
_ROWS = f"""
INSERT INTO customers_customer (customer_id, {", ".join(_WRITTEN)})
SELECT s.customer_id, {", ".join(_value_sql(n) for n in FIELD_ORDER)}, s.quality_completeness,
       COALESCE(w.warnings, '[]'::jsonb), %(source)s, %(now)s, %(now)s
FROM {_STAGE} s LEFT JOIN {_STAGE_WARNINGS} w ON w.idx = s.idx
"""  # noqa: S608
_MERGE = f"""
ON CONFLICT (customer_id) DO UPDATE SET
    {", ".join(f"{n} = EXCLUDED.{n}" for n in _WRITTEN if n != "created_at")}
WHERE ({", ".join(f"customers_customer.{n}" for n in _COMPARED)})
      IS DISTINCT FROM ({", ".join(f"EXCLUDED.{n}" for n in _COMPARED)})
RETURNING id, customer_id, (xmax = 0) AS created
"""
# A scalar subquery runs once per row through the customer_id index; a join would read the table.
_STORED = "(SELECT true FROM customers_customer c WHERE c.customer_id = s.customer_id)"
# Customers new to the table take a plain INSERT, about a third cheaper than ON CONFLICT's
# speculative insertion; the rest go through ON CONFLICT ... DO UPDATE ... WHERE <row differs>,
# whose RETURNING leaves out unchanged rows. Should another writer insert one of the "new"
# customers meanwhile, the INSERT fails and the chunk is merged by _UPSERT_ALL instead.
_UPSERT_SPLIT = f"""
fresh AS ({_ROWS} WHERE {_STORED} IS NULL RETURNING id, customer_id, true AS created),
merged AS ({_ROWS} WHERE {_STORED} {_MERGE}),
up AS (SELECT * FROM fresh UNION ALL SELECT * FROM merged)
"""  # noqa: S608
_UPSERT_ALL = f"up AS ({_ROWS} {_MERGE})"
# A bulk load of new customers: no per-row lookup at all. The first existing customer makes it fail.
_INSERT_ALL = f"fresh AS ({_ROWS} RETURNING id, customer_id, true AS created), up AS (SELECT * FROM fresh)"  # noqa: S608


def _statement(upsert: str) -> str:
    """One statement per chunk: the upsert (as a data-modifying CTE) and the counts."""
    return f"""
WITH {upsert}
SELECT (SELECT count(*) FROM up WHERE created),
       (SELECT count(*) FROM up WHERE NOT created),
       (SELECT array_agg(customer_id) FROM up WHERE created AND customer_id = ANY(%(watch)s)),
       (SELECT array_agg(customer_id) FROM up WHERE NOT created AND customer_id = ANY(%(watch)s)),
       CASE WHEN %(want_ids)s THEN (SELECT array_agg(customer_id) FROM up) END
"""  # noqa: S608


_UPSERTS = {"insert": _INSERT_ALL, "split": _UPSERT_SPLIT, "merge": _UPSERT_ALL}
_STATEMENTS = {mode: _statement(upsert) for mode, upsert in _UPSERTS.items()}


class PostgresWriter:
    """COPY into a staging table, then one statement per chunk.

    While chunks hold only new customers (a first load), the next chunk is tried as a plain
    INSERT; the first chunk with a stored customer fails it, and from then on chunks are split
    into new and stored customers, or merged whole if a concurrent writer gets in the way.
    """

    def __init__(self) -> None:
        self.expect_new = True

    def write(self, job: ChunkWrite) -> WriteOutcome:
        out = WriteOutcome(before=stored_before(job.watch))
        with connection.cursor() as cursor:
            # A plan for 100,000 rows crosses jit_above_cost, and compiling it costs more than it saves.
            cursor.execute("SET LOCAL jit = off")
            # Outcome foreign keys are checked as rows go in, not at COMMIT, where they would hold the
            # run's row lock that parallel writers take last.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            # The commit need not wait for the WAL flush: a chunk lost in a crash loses its
            # IngestionChunk row with it, so the resumed run writes it again.
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
            # Hashing a 50,000-row chunk against the upsert's rows needs ~8 MB; the default 4 MB spills to disk.
            cursor.execute("SET LOCAL work_mem = '64MB'")
            self._stage(cursor, job)
            params = {
                "source": job.source,
                "now": job.now,
                "watch": list(job.watch),
                "want_ids": job.want_ids,
            }
            row = None
            for mode in ("insert", "split", "merge") if self.expect_new else ("split", "merge"):
                try:
                    with transaction.atomic():
                        cursor.execute(_STATEMENTS[mode], params)
                        row = cursor.fetchone()
                    break
                except IntegrityError:  # a customer already stored, or stored meanwhile by another writer
                    if mode == "merge":
                        raise
            out.created, out.updated, created_list, updated_list, changed = row
            self.expect_new = out.created == len(job.rows)
            out.changed_ids = list(changed or ())
            out.unchanged = len(job.rows) - out.created - out.updated
            created_ids, updated_ids = set(created_list or ()), set(updated_list or ())
            out.watched = {
                cid: "created" if cid in created_ids else "updated" if cid in updated_ids else "unchanged"
                for cid in job.watch
            }
        return out

    def _stage(self, cursor: Any, job: ChunkWrite) -> None:
        columns = ", ".join(f"{name} {kind}" for name, kind in _STAGE_COLUMNS)
        cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} ({columns}) ON COMMIT DELETE ROWS")
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE_WARNINGS} (idx int4, warnings jsonb) ON COMMIT DELETE ROWS"
        )
        cursor.execute(f"TRUNCATE {_STAGE}, {_STAGE_WARNINGS}")
        raw = cursor.cursor  # psycopg2's own cursor, for COPY
        raw.copy_expert(f"COPY {_STAGE} FROM STDIN WITH (FORMAT binary)", io.BytesIO(copy_buffer(job)))
        flagged = np.fromiter(job.result.warnings, dtype=np.intp, count=len(job.result.warnings))
        warned = [int(i) for i in np.asarray(job.rows)[np.isin(job.rows, flagged)]] if len(flagged) else []
        if warned:
            text = io.StringIO()
            out = csv.writer(text)
            for i in warned:
                out.writerow((i, json.dumps(job.result.warnings[i])))
            text.seek(0)
            raw.copy_expert(f"COPY {_STAGE_WARNINGS} FROM STDIN WITH (FORMAT csv)", text)


def copy_buffer(job: ChunkWrite) -> bytes:
    """The chunk's rows in PostgreSQL's binary COPY format, built column by column."""
    result, rows = job.result, np.asarray(job.rows, dtype=np.intp)
    cols = result.columns
    ids = cols["customer_id"][rows]
    # The id rule allows ASCII letters, digits and _ . : - only, so characters are bytes.
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    values: dict[str, np.ndarray] = {
        "idx": rows.astype(np.int32),
        "tenure_months": cols["tenure_months"][rows].astype(np.int16),
        "quality_completeness": np.asarray(job.completeness, dtype=np.float64)[rows],
    }
    for name in BOOL_FIELDS:
        values[name] = cols[name][rows]
    for name in _ENUMS:
        values[name] = _enum_codes(result, name)[rows].astype(np.int16) + 1
    for name in ("monthly_charges", "total_charges", "age", "income"):
        values[name] = cols[name][rows]
    parts = [_COPY_HEADER]
    for width in np.unique(lengths):
        group = np.flatnonzero(lengths == width)
        parts.append(_tuples(values, ids[group].astype(f"S{width}"), int(width), group))
    parts.append(_COPY_TRAILER)
    return b"".join(parts)


def _enum_codes(result: ValidationResult, name: str) -> np.ndarray:
    codes = result.enum_codes.get(name)
    if codes is not None:
        return codes
    index = {v: i for i, v in enumerate(ENUM_FIELDS[name])}
    return np.array([index.get(v, -1) for v in result.columns[name]], dtype=np.int8)


def _tuples(values: dict[str, np.ndarray], ids: np.ndarray, id_width: int, group: np.ndarray) -> bytes:
    layout: list[tuple[str, str]] = [("count", ">i2")]
    for name, kind in _STAGE_COLUMNS:
        layout.append((f"{name}__len", ">i4"))
        layout.append((name, f"S{id_width}" if name == "customer_id" else _NUMPY_TYPE[kind]))
    tuples = np.empty(len(group), dtype=np.dtype(layout))
    tuples["count"] = len(_STAGE_COLUMNS)
    for name, kind in _STAGE_COLUMNS:
        tuples[f"{name}__len"] = id_width if name == "customer_id" else _WIDTH[kind]
        tuples[name] = ids if name == "customer_id" else values[name][group]
    return tuples.tobytes()
