"""Read, score and write one batch-job chunk at the database's bulk speed.

Where the time goes for a million stored customers on PostgreSQL (measured on this 2-core host):
Django model instances or psycopg2 row tuples cost ~15 s just to read the 22 columns, so a chunk
reads its customers with ``COPY (query) TO STDOUT`` and parses the text with pandas' C reader
(~1 s per 250,000 rows). Scoring and the explanations are one vectorised call each; the top
factors' JSON is built from a table of the distinct (field, impact) strings rather than per row.
Predictions go back with ``COPY FROM`` in text format (predictions.writes). On the predictions
table the write is the dominant cost, and random UUIDs alone tripled it (26 s vs 11 s for 500,000
rows: every insert touched a random page of the unique index), so job rows get time-ordered
(version 7) UUIDs.

Other databases (SQLite in development) take the ORM path: slower, same results.
"""

from __future__ import annotations

import gc
import io
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from django.db import connection
from django.db.models import OuterRef, QuerySet, Subquery

from churn_infra import metrics
from churn_infra.csv_cells import safe_cell
from churn_infra.db import copy_supported
from churn_ml.deferred import deferred
from churn_ml.features import FACTOR_GROUPS
from churn_ml.inputs import snapshot_texts
from churn_ml.schema import BOOL_FIELDS, NUMBER_FIELDS, RECORD_FIELDS, ValidationResult
from churn_ml.scoring.factors import IMPACT_DECIMALS
from churn_ml.tiers import RISK_LEVELS, RISK_THRESHOLDS, risk_levels
from predictions import writes
from predictions.models import Prediction, PredictionSource

# pandas loads on first use (churn_ml.deferred): a web worker that scores single records never needs it.
pd = deferred("pandas")

TOP_FACTORS = 5
LEVEL_RANK = {level.value: rank for rank, level in enumerate(RISK_LEVELS)}
_NO_RANK = -1
_PREVIOUS = "previous_risk_level"
_IMPACT_SCALE = 10**IMPACT_DECIMALS
# Factor index fits in the low 5 bits of a (factor, impact) key; 18 factor groups today.
_FIELD_BITS = 5
assert len(FACTOR_GROUPS) < 2**_FIELD_BITS


@dataclass
class ChunkInput:
    """Canonical columns of the rows to score, each row's previous risk level, and rejected rows."""

    columns: dict[str, np.ndarray]
    previous: np.ndarray
    n: int
    rejected: list[dict[str, Any]] = field(default_factory=list)
    rejected_count: int = 0
    records: list[dict[str, Any]] | None = None


@dataclass
class ChunkResult:
    """What a chunk wrote, and where its time went (seconds)."""

    scored: int = 0
    failed: int = 0
    risk_increased: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    results_csv: bytes | None = None


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic GC while building millions of short strings.

    Each generation-2 pass walks the whole heap of a worker (Django, pandas, scikit-learn); with
    collection on, building a 500,000-row chunk's JSON took 1.7 s instead of 1.2 s. Nothing made
    here has cycles, so reference counting frees it all.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# --- reading ----------------------------------------------------------------------------------


def _previous_level_subquery() -> Subquery:
    # The customer's latest prediction, read straight off the (customer_id, -created_at) index.
    # No tie-break on the primary key: the index cannot supply it, and sorting each customer's
    # rows made the chunk's read 50% slower; two predictions of one customer at the same
    # microsecond come from one request and carry the same level.
    latest = Prediction.objects.filter(customer_id=OuterRef("customer_id")).order_by("-created_at")
    return Subquery(latest.values("risk_level")[:1])


def _chunk_queryset(customers: QuerySet) -> QuerySet:
    # In primary-key order, which the index scan gives for free; the rows are put in customer_id
    # order in memory (see _by_customer_id), where sorting costs nothing next to the database.
    return customers.annotate(**{_PREVIOUS: _previous_level_subquery()}).order_by("pk").values_list(
        *RECORD_FIELDS, _PREVIOUS
    )


def read_stored_customers(customers: QuerySet) -> ChunkInput:
    """The given customers' records as canonical columns, in one query.

    Stored customers passed the contract's validation when they were written, so their columns are
    taken as they are (the rules are not re-run on a million rows every night).
    """
    query = _chunk_queryset(customers)
    if copy_supported():
        return _by_customer_id(_read_copy(query))
    rows = list(query)
    columns = {name: [r[i] for r in rows] for i, name in enumerate(RECORD_FIELDS)}
    from churn_ml.schema import validate_columns

    result = validate_columns(columns, len(rows))
    previous = np.array([r[-1] for r in rows], dtype=object)
    return _by_customer_id(_from_validation(result, previous))


def _by_customer_id(chunk: ChunkInput) -> ChunkInput:
    """Rows in customer_id order: the predictions' customer indexes then take them in one sweep."""
    order = np.argsort(chunk.columns["customer_id"], kind="stable")
    return ChunkInput(
        columns={name: col[order] for name, col in chunk.columns.items()}, previous=chunk.previous[order], n=chunk.n
    )


def _read_copy(query: QuerySet) -> ChunkInput:
    sql, params = query.query.sql_with_params()
    buffer = io.BytesIO()
    with connection.cursor() as cursor:
        if connection.in_atomic_block:
            # Compiling this query cost ~10 ms per chunk and won nothing on 25,000 rows.
            cursor.execute("SET LOCAL jit = off")
        # COPY takes no bind parameters: let the driver quote them into the statement.
        statement = cursor.cursor.mogrify(sql, params).decode()
        cursor.copy_expert(f"COPY ({statement}) TO STDOUT WITH (FORMAT csv)", buffer)
    buffer.seek(0)
    names = [*RECORD_FIELDS, _PREVIOUS]
    dtypes: dict[str, Any] = dict.fromkeys(names, object)
    dtypes.update(dict.fromkeys(NUMBER_FIELDS, np.float64))
    frame = pd.read_csv(
        buffer, header=None, names=names, dtype=dtypes, keep_default_na=False, na_values=[""], engine="c"
    )
    del buffer
    columns: dict[str, np.ndarray] = {}
    for name in RECORD_FIELDS:
        series = frame[name]
        if name in BOOL_FIELDS:
            columns[name] = series.to_numpy() == "t"
        elif name in NUMBER_FIELDS:
            columns[name] = series.to_numpy(dtype=np.float64)
        else:
            columns[name] = _objects(series)
    return ChunkInput(columns=columns, previous=_objects(frame[_PREVIOUS]), n=len(frame))


def _objects(series: pd.Series) -> np.ndarray:
    """An object column with None (not NaN) for null, as the scorer expects."""
    values = series.to_numpy(dtype=object)
    missing = pd.isna(values)
    if missing.any():
        values = values.copy()
        values[missing] = None
    return values


def _from_validation(result: ValidationResult, previous: np.ndarray) -> ChunkInput:
    valid = result.valid
    columns = {name: col[valid] for name, col in result.columns.items()}
    return ChunkInput(columns=columns, previous=previous[valid], n=int(valid.sum()))


def previous_levels(customer_ids: Sequence[str]) -> np.ndarray:
    """The latest stored risk level of each customer id (None when never scored)."""
    if not customer_ids:
        return np.empty(0, dtype=object)
    rows = (
        Prediction.objects.filter(customer_id__in=list(customer_ids))
        .order_by("customer_id", "-created_at", "-pk")
        .values_list("customer_id", "risk_level")
    )
    latest: dict[str, str] = {}
    for cid, level in rows.iterator(chunk_size=10_000):
        latest.setdefault(cid, level)
    return np.array([latest.get(cid) for cid in customer_ids], dtype=object)


def file_part_input(result: ValidationResult, lines: Sequence[int], max_rejected: int = 100) -> ChunkInput:
    """Columns of a validated file part: valid rows to score, invalid ones as rejected rows."""
    rejected = []
    for i in sorted(result.errors):
        if len(rejected) < max_rejected:
            rejected.append({"line": int(lines[i]), "customer_id": result.columns["customer_id"][i],
                             "errors": result.errors[i]})
    valid = result.valid
    records = [result.record(int(i)) for i in np.flatnonzero(valid)]
    return ChunkInput(
        columns={name: col[valid] for name, col in result.columns.items()},
        previous=previous_levels([r["customer_id"] for r in records]),
        n=len(records),
        rejected=rejected,
        rejected_count=len(result.errors),
        records=records,
    )


# --- scoring ----------------------------------------------------------------------------------


def factors_json(values: np.ndarray, top_k: int = TOP_FACTORS, *, stored: bool = False) -> list[str]:
    """Each row's top factors as the contract's JSON text, equal to ``scorer.explain`` of the row;
    ``stored``: in the stored form instead, ``[feature, impact]`` pairs (churn_ml.stored_factors).

    Same selection as the scorer (stable sort by absolute impact, impacts rounded to 1e-4, zero
    impacts left out), same object as ``Factor.as_dict``. Distinct (factor, impact) pairs are
    formatted once and looked up.
    """
    n = values.shape[0]
    if n == 0:
        return []
    k = min(top_k, values.shape[1])
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :k]
    # np.round(x, 4) is rint(x * 1e4) / 1e4; keeping the integer makes the pairs hashable keys.
    scaled = np.rint(np.take_along_axis(values, order, axis=1) * _IMPACT_SCALE).astype(np.int64)
    keys = (scaled << _FIELD_BITS) | order
    codes, uniques = pd.factorize(keys.ravel())
    if stored:
        prefixes = [f'["{g.feature}",' for g in FACTOR_GROUPS]
        suffixes = ["]"] * len(FACTOR_GROUPS)
    else:
        prefixes = [f'{{"feature":"{g.feature}","impact":' for g in FACTOR_GROUPS]
        suffixes = [f',"fields":{json.dumps(list(g.fields))},"label":{json.dumps(g.label)}}}' for g in FACTOR_GROUPS]
    texts = np.array(
        [
            f"{prefixes[key & 31]}{(key >> _FIELD_BITS) / _IMPACT_SCALE!r}{suffixes[key & 31]}"
            for key in uniques.tolist()
        ],
        dtype=object,
    )
    table = texts[codes].reshape(n, k).tolist()
    out = ["[" + ",".join(row) + "]" for row in table]
    zero = scaled == 0
    if zero.any():
        # A zero impact and everything after it (smaller still) is left out, as in scorer.explain.
        for i in np.flatnonzero(zero.any(axis=1)).tolist():
            keep = int(np.argmax(zero[i]))
            out[i] = "[" + ",".join(table[i][:keep]) + "]"
    return out


_BOOL_CELLS = {True: "t", False: "f"}


@dataclass(frozen=True)
class WriteContext:
    """What every row of a chunk shares."""

    job_id: int
    model_version_id: int
    model_version: str
    recommendations: Mapping[str, list[str]]
    created_at: datetime
    offers: Mapping[str, dict[str, Any] | None] = field(default_factory=dict)
    results_csv: bool = False


def score_and_write(chunk: ChunkInput, scorer: Any, context: WriteContext) -> ChunkResult:
    """Score the chunk's rows in one vectorised call and write their predictions in one COPY."""
    result = ChunkResult(failed=chunk.rejected_count, rejected=list(chunk.rejected))
    if chunk.n == 0:
        return result
    started = time.perf_counter()
    probabilities = scorer.predict_proba(chunk.columns)
    finite = np.isfinite(probabilities)
    if not finite.all():
        # A stored row the scorer cannot use (a null required number): counted as failed.
        for i in np.flatnonzero(~finite)[:100].tolist():
            result.rejected.append({"customer_id": chunk.columns["customer_id"][i],
                                    "errors": {"non_field_errors": ["The record could not be scored."]}})
        result.failed += int((~finite).sum())
        chunk = _take(chunk, finite)
        probabilities = probabilities[finite]
    values = scorer.contributions(chunk.columns).values
    levels = risk_levels(probabilities)
    result.timings["score"] = round(time.perf_counter() - started, 4)

    started = time.perf_counter()
    level_rank = np.searchsorted(np.asarray(RISK_THRESHOLDS), probabilities, side="right")
    # Never scored before (or an unknown level): no rise to flag.
    previous_rank = np.array([LEVEL_RANK.get(p, _NO_RANK) for p in chunk.previous.tolist()], dtype=np.int64)
    increased = (previous_rank != _NO_RANK) & (level_rank > previous_rank)
    result.risk_increased = int(increased.sum())
    rounded = np.round(probabilities, 6).tolist()
    latency_ms = round(1000 * (result.timings["score"]) / max(chunk.n, 1), 6)
    with _collector_paused():
        factors = factors_json(values, TOP_FACTORS, stored=True)
        ids = writes.time_ordered_uuids(chunk.n)
        level_names = levels.tolist()
        flags = increased.tolist()
        _write(chunk, context, ids, rounded, level_names, factors, flags, latency_ms)
        if context.results_csv:
            full = factors_json(values, TOP_FACTORS)
            result.results_csv = results_csv(chunk, context, ids, rounded, level_names, full, flags)
        del values
    result.scored = chunk.n
    result.timings["write"] = round(time.perf_counter() - started, 4)
    metrics.count_scored(model_version=context.model_version, levels=levels, probabilities=probabilities,
                         source=PredictionSource.JOB)
    return result


def _take(chunk: ChunkInput, mask: np.ndarray) -> ChunkInput:
    records = [r for r, keep in zip(chunk.records, mask.tolist(), strict=True) if keep] if chunk.records else None
    return ChunkInput(
        columns={k: v[mask] for k, v in chunk.columns.items()}, previous=chunk.previous[mask], n=int(mask.sum()),
        rejected=chunk.rejected, records=records,
    )


def results_csv(
    chunk: ChunkInput, context: WriteContext, ids: list[str], probabilities: list[float], levels: list[str],
    factors: list[str], increased: list[bool],
) -> bytes:
    """The chunk's rows of the job's results CSV (RESULT_COLUMNS of predictions.batch_jobs.results), no header."""
    # The ids and the version go through the formula guard (the other cells are numbers,
    # fixed words, JSON and UUIDs); the id rule allows no comma or quote, so none needs quoting.
    customer_ids = [safe_cell(c) for c in chunk.columns["customer_id"].tolist()]
    previous = ["" if p is None else p for p in chunk.previous.tolist()]
    version = safe_cell(context.model_version)
    lines = [
        f'{customer_ids[i]},{probabilities[i]!r},{levels[i]},{previous[i]},{"true" if increased[i] else "false"},'
        f'{version},"{factors[i].replace(chr(34), chr(34) * 2)}",'
        f"{ids[i][:8]}-{ids[i][8:12]}-{ids[i][12:16]}-{ids[i][16:20]}-{ids[i][20:]}\n"
        for i in range(chunk.n)
    ]
    return "".join(lines).encode()


def _write(
    chunk: ChunkInput, context: WriteContext, ids: list[str], probabilities: list[float], levels: list[str],
    factors: list[str], increased: list[bool], latency_ms: float,
) -> None:
    """The chunk's predictions in one COPY (writes.copy_predictions), from cells built column-wise."""
    rows = {
        "prediction_id": ids,
        "customer_id": chunk.columns["customer_id"].tolist(),
        "churn_probability": probabilities,
        "risk_level": levels,
        # The same for every row at a level: serialised once per level.
        "recommendations": writes.per_level_cells(
            levels, {level: list(texts) for level, texts in context.recommendations.items()}, missing=[]
        ),
        "offer": writes.per_level_cells(levels, context.offers),
        "top_factors": factors,
        # The snapshot of the inputs each row was scored with (churn_ml.inputs).
        "inputs": snapshot_texts(chunk.columns, escape=writes.copy_text),
        "previous_risk_level": [p or "" for p in chunk.previous.tolist()],
        "risk_increased": list(map(_BOOL_CELLS.__getitem__, increased)),
    }
    constants = {
        "model_version_id": context.model_version_id,
        "source": PredictionSource.JOB,
        "latency_ms": latency_ms,
        "batch_job_id": context.job_id,
        "created_at": context.created_at,
    }
    writes.copy_predictions(chunk.n, rows, constants)
