"""The one way prediction rows are written: single calls, batch calls, re-scores and batch jobs.

Every path fills the same columns in the same order (:func:`column_plan`: every concrete column of
Prediction), giving per-row cells for some and per-call constants for others; a column a caller
does not set takes the model's default, so a column added to the model is written on every path.

Cells are COPY text format strings (:data:`NULL`, :func:`copy_text`), or ints and floats (written
as str() writes them): callers prepare them
column-wise, where the repeated ones cost once (a level's recommendations and offer, a
vectorised snapshot's distinct values), and no model instance is built. On PostgreSQL many rows
go with one COPY (:func:`copy_predictions`), one row with one INSERT statement
(:func:`insert_prediction`); elsewhere (SQLite in development) the same cells become model
instances: slower, same rows.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from itertools import repeat
from typing import Any, NamedTuple

import numpy as np
from django.conf import settings
from django.db import connection, models, transaction

from churn_infra.db import copy_supported, relaxed_commit
from churn_ml.stored_factors import compact_factors_text
from predictions.models import Prediction

NULL = "\\N"
"""COPY's null cell (text format)."""
# Rows per INSERT of the non-PostgreSQL fallback (1,000 measured fastest for API batches when the
# ORM wrote them on PostgreSQL too).
FALLBACK_BATCH_SIZE = 1000
_COMPACT = (",", ":")

# Per-row columns first, then what a call shares, then any other column (its default): the
# order only has to be one order, the same for every writer.
_LEADING = (
    "prediction_id", "customer_id", "churn_probability", "risk_level", "recommendations", "offer", "top_factors",
    "model_version_id", "inputs", "previous_risk_level", "risk_increased", "source", "latency_ms", "department_id",
    "requested_by_key_id", "requested_by_user_id", "request_id", "batch_job_id", "created_at",
)


# --- cells ------------------------------------------------------------------------------------


def copy_text(value: str) -> str:
    """Escape a string for COPY's text format."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


_ESCAPED = re.compile(r"\\(.)")
_UNESCAPE = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


def _value_text(cell: str | float) -> str | float | None:
    """A cell back as the value's text (None for null): what a query parameter or the ORM is given."""
    if not isinstance(cell, str):
        return cell  # a number
    if cell == NULL:
        return None
    if "\\" not in cell:
        return cell
    return _ESCAPED.sub(lambda m: _UNESCAPE[m.group(1)], cell)


def json_cell(value: Any) -> str:
    """A JSON column's cell: compact JSON text, escaped; None is SQL null (not JSON null)."""
    return NULL if value is None else copy_text(json.dumps(value, separators=_COMPACT))


def value_cell(field: models.Field, value: Any) -> str:
    """Any Python value of ``field`` as its cell (for per-call constants and defaults: once per write)."""
    if value is None:
        return NULL
    if isinstance(field, models.JSONField):
        return json_cell(value)
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return copy_text(str(value))


# --- the column plan ---------------------------------------------------------------------------


class Column(NamedTuple):
    name: str  # the field's attname, as callers name columns
    field: models.Field
    default: str  # the model's default as a cell
    default_param: Any  # and as a query parameter


def _written(field: models.Field) -> bool:
    # Keys the database assigns and generated columns are not written.
    return not (field.primary_key or getattr(field, "db_returning", False) or getattr(field, "generated", False))


@functools.cache
def column_plan() -> tuple[Column, ...]:
    """Every column a prediction write fills, in the one order all writers use, with its default cell."""
    fields = {f.attname: f for f in Prediction._meta.concrete_fields if _written(f)}
    order = [name for name in _LEADING if name in fields] + [name for name in fields if name not in _LEADING]
    return tuple(
        Column(name, fields[name], value_cell(fields[name], default), _param(fields[name], default))
        for name, default in ((name, fields[name].get_default()) for name in order)
    )


def forget_column_plan() -> None:
    """Work the plan out again (and what is derived from it): for tests that change the model."""
    for cached in (column_plan, _column_names, _insert_sql, _insert_layout):
        cached.cache_clear()


@functools.cache
def _column_names() -> frozenset[str]:
    return frozenset(c.name for c in column_plan())


def _check_names(*given: Mapping[str, Any]) -> None:
    for names in given:
        unknown = names.keys() - _column_names()
        if unknown:
            raise ValueError(f"not columns of Prediction: {sorted(unknown)}")


def _param(field: models.Field, value: Any) -> Any:
    """A Python value of ``field`` as a query parameter of the raw INSERT."""
    if value is not None and isinstance(field, models.JSONField):
        return json.dumps(value, separators=_COMPACT)
    return value


Cells = Sequence[str | int | float]


def _lines(n: int, rows: Mapping[str, Cells], constants: Mapping[str, Any]) -> list[str]:
    """The n rows as COPY text lines, the plan's columns in order, each ending in a newline."""
    _check_names(rows, constants)
    segments: list[Cells | str] = []
    fixed: list[str] = []
    for column in column_plan():
        cells = rows.get(column.name)
        if cells is None:
            name = column.name
            fixed.append(value_cell(column.field, constants[name]) if name in constants else column.default)
            continue
        if len(cells) != n:
            raise ValueError(f"{column.name}: {len(cells)} cells for {n} rows")
        if fixed:
            segments.append("\t".join(fixed))  # adjacent constant columns: one piece of every line
            fixed = []
        segments.append(cells)
    if fixed:
        segments.append("\t".join(fixed))
    return _line_builder(tuple(isinstance(s, str) for s in segments))(n, *segments)


@functools.cache
def _line_builder(constant: tuple[bool, ...]) -> Any:
    """A function (n, *segments) -> the n lines: one f-string per row over the segments, constant
    ones (str) as they are, per-row ones indexed.

    Generated once per shape of caller because it is the write's inner loop. For a 100,000-row
    job chunk (CPU, this 2-core host, lines joined and encoded): ~130 ms, as with the hand-written
    f-string it replaces (~133 ms); ``"\\t".join`` over ``zip(*segments)`` took ~120-130 ms plus
    ~17 ms for the probabilities' texts, which ``!s`` formats here in passing (an int or float
    cell is written as str() writes it). Only names and tabs go into the source; the cells are
    arguments.
    """
    names = [f"s{i}" for i in range(len(constant))]
    pieces = "\\t".join(
        f"{{{name}}}" if fixed else f"{{{name}[i]!s}}" for name, fixed in zip(names, constant, strict=True)
    )
    source = f"def build(n, {', '.join(names)}):\n    return [f\"{pieces}\\n\" for i in range(n)]\n"
    namespace: dict[str, Any] = {}
    exec(compile(source, "<predictions.writes line builder>", "exec"), namespace)  # noqa: S102
    return namespace["build"]


# --- writers -----------------------------------------------------------------------------------


def copy_predictions(n: int, rows: Mapping[str, Cells], constants: Mapping[str, Any]) -> None:
    """Write n predictions: ``rows`` maps columns to their n prepared cells, ``constants`` columns to
    one Python value for every row; the plan's other columns take their default.

    Runs in the caller's transaction. On PostgreSQL one COPY in text format; elsewhere bulk_create.
    """
    if n == 0:
        return
    lines = _lines(n, rows, constants)
    if not copy_supported():
        _orm_write(lines)
        return
    payload = io.BytesIO("".join(lines).encode())
    del lines
    quote = connection.ops.quote_name
    column_list = ", ".join(quote(c.field.column) for c in column_plan())
    with connection.cursor() as cursor:
        cursor.copy_expert(f"COPY {quote(Prediction._meta.db_table)} ({column_list}) FROM STDIN", payload, 1 << 16)


@functools.cache
def _insert_sql() -> str:
    quote = connection.ops.quote_name
    columns = [quote(c.field.column) for c in column_plan()]
    # Names come from the model's metadata, quoted; every value is a query parameter.
    return (
        f"INSERT INTO {quote(Prediction._meta.db_table)} ({', '.join(columns)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )


_RELAXED = "SET LOCAL synchronous_commit TO OFF; "


def insert_statement(row: Mapping[str, str | float], constants: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """The INSERT of one prediction and its parameters (PostgreSQL), for a caller that runs it in
    a statement of its own, e.g. after a ``WITH`` clause that writes the scored customer."""
    # Where each column's parameter comes from, worked out once per caller: this is the request
    # path, and a loop over the plan's columns cost as much as the rest of the call.
    layout = _insert_layout(frozenset(row), frozenset(constants))
    params = [
        _value_text(row[key]) if source is _ROW else constants[key] if source is _CONSTANT
        else _param(field, constants[key]) if source is _JSON_CONSTANT else key
        for source, key, field in layout
    ]
    return _insert_sql(), params


def insert_prediction(
    row: Mapping[str, str | float], constants: Mapping[str, Any], *, relaxed: bool = True,
    before: tuple[str, list[Any]] | None = None,
) -> None:
    """One prediction (``row``: its cells, as for copy_predictions) in one statement and one round
    trip; ``relaxed=False`` inside a transaction that also writes what must be durable.

    ``before`` (PostgreSQL only): a ``WITH`` clause and its parameters that this INSERT completes,
    such as customers.customer_upsert_scored_cte: what it writes commits with the prediction, in
    the same statement and round trip.

    On PostgreSQL the INSERT travels with ``SET LOCAL synchronous_commit TO OFF`` in a single
    simple query, which the server runs as one transaction (see relaxed_commit for why). The
    ORM's save() would cost ~0.5 ms of CPU building a model instance and compiling the SQL. The
    row's cells go as text parameters, which the server reads as the columns' types; constants
    and defaults as their values.
    """
    if not copy_supported():
        if before is not None:
            raise ValueError("a WITH clause before the INSERT needs PostgreSQL")
        with relaxed_commit() if relaxed else transaction.atomic():
            _orm_write(_lines(1, {name: (cell,) for name, cell in row.items()}, constants))
        return
    sql, params = insert_statement(row, constants)
    if before is not None:
        sql, params = before[0] + sql, [*before[1], *params]
    if relaxed and settings.DATABASE_RELAXED_COMMIT:
        sql = _RELAXED + sql
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


_ROW, _CONSTANT, _JSON_CONSTANT, _DEFAULT = object(), object(), object(), object()


@functools.cache
def _insert_layout(row: frozenset[str], constants: frozenset[str]) -> tuple[tuple[object, Any, Any], ...]:
    """Per plan column: (source, name or default parameter, field)."""
    _check_names(dict.fromkeys(row), dict.fromkeys(constants))
    layout = []
    for column in column_plan():
        if column.name in row:
            layout.append((_ROW, column.name, None))
        elif column.name in constants:
            json_column = isinstance(column.field, models.JSONField)
            layout.append((_JSON_CONSTANT if json_column else _CONSTANT, column.name, column.field))
        else:
            layout.append((_DEFAULT, column.default_param, None))
    return tuple(layout)


def _orm_write(lines: list[str]) -> None:
    """The non-PostgreSQL path: the same lines as model instances."""
    fields = [c.field for c in column_plan()]
    objects = []
    for line in lines:
        values = line[:-1].split("\t")  # no raw tab or newline in a cell: COPY text escapes them
        objects.append(Prediction(**{f.attname: _python(f, v) for f, v in zip(fields, values, strict=True)}))
    Prediction.objects.bulk_create(objects, batch_size=FALLBACK_BATCH_SIZE)


def _python(field: models.Field, cell: str) -> Any:
    text = _value_text(cell)
    if text is None:
        return None
    if isinstance(field, models.JSONField):
        return json.loads(text)
    return field.to_python(text)


# --- what the scoring paths share --------------------------------------------------------------


def time_ordered_uuids(n: int) -> list[str]:
    """n random version-7 UUIDs (hex) sharing this millisecond's prefix: inserts stay on the index's edge.

    Random ids tripled a job's write (26 s vs 11 s for 500,000 rows: every insert touched a random
    page of the unique index) and cost ~10% of a 1,000-row COPY.
    """
    if n == 0:
        return []
    raw = np.frombuffer(os.urandom(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, :6] = np.frombuffer((time.time_ns() // 1_000_000).to_bytes(6, "big"), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x70  # version 7
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 9562 variant
    hexed = raw.tobytes().hex()
    return [hexed[i : i + 32] for i in range(0, 32 * n, 32)]


def uuid_text(hexed: str) -> str:
    """The canonical (dashed) text of a hex UUID, as the contract shows prediction ids."""
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


def per_level_cells(levels: Sequence[str], values: Mapping[str, Any], missing: Any = None) -> list[str]:
    """Each row's JSON cell of a per-level value (recommendations, offer; ``missing`` for a level
    without one): serialised once per level, not once per row."""
    cells = {level: json_cell(value) for level, value in values.items()}
    return list(map(cells.get, levels, repeat(json_cell(missing), len(levels))))


def contract_cells(predictions: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """The per-row cells of contract-shaped prediction objects (what prediction_score answers).

    ``model_version`` (a name) is not among them: the row keeps the version's id, which the caller
    knows. The recommendations and offer of a level are the tier's shared objects, so each is
    serialised once (by identity), not once per row; the factors are stored compact
    (churn_ml.stored_factors).
    """
    texts: dict[int, str] = {}

    def shared(value: Any) -> str:
        text = texts.get(id(value))
        if text is None:
            text = texts[id(value)] = json_cell(value)
        return text

    return {
        "prediction_id": [p["prediction_id"] for p in predictions],
        "customer_id": [p["customer_id"] for p in predictions],
        "churn_probability": [p["churn_probability"] for p in predictions],
        "risk_level": [p["risk_level"] for p in predictions],
        "recommendations": [shared(p["recommendations"]) for p in predictions],
        "offer": [shared(p["offer"]) for p in predictions],
        "top_factors": [compact_factors_text(p["top_factors"]) for p in predictions],
    }
