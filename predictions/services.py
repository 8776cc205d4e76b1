"""Scoring: validate -> features -> inference -> risk level -> recommendations -> factors -> store.

The request path uses the compiled scorer (pure Python for one record, numpy for a batch), never
the sklearn Pipeline, which costs ~9 ms of CPU per row. A batch is validated column-wise, scored
in one vectorised call and stored with one COPY (predictions.writes).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import transaction
from django.utils import timezone

from accounts.services import SYSTEM, Actor
from churn_infra import metrics
from churn_infra.db import copy_supported, relaxed_commit
from churn_infra.errors import InputError
from churn_ml.inputs import snapshot_text, snapshot_texts
from churn_ml.record import RecordCheck, check_record
from churn_ml.schema import RECORD_FIELDS, ValidationResult, validate_records
from churn_ml.tiers import risk_level, risk_levels
from customers.models import Customer
from customers.services import customer_upsert_scored, customer_upsert_scored_cte, customers_bulk_upsert
from modelregistry.loader import LoadedModel, ab_bucket, active_model
from modelregistry.shadow import shadow_submit
from predictions import writes
from predictions.models import PredictionSource
from predictions.tier_actions import NO_TIER, tier_actions

TOP_FACTORS = 5
# The source of a customer stored because a full record was scored (POST predictions/ and batch/).
PREDICTION_CUSTOMER_SOURCE = "api:prediction"
# Customers per batch when re-scoring stored ones: a batch call's size.
RESCORE_BATCH_SIZE = 1000


class ScoringInputError(InputError):
    """The input cannot be scored; ``errors`` maps fields to messages like a validation error."""


# --- one record ------------------------------------------------------------------------------

_IS_REFERENCE = frozenset({"customer_id"})


def _stored_records(customer_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    rows = Customer.objects.filter(customer_id__in=list(customer_ids)).values_list(*RECORD_FIELDS)
    return {row[0]: dict(zip(RECORD_FIELDS, row, strict=True)) for row in rows}


def _is_reference(item: Any) -> bool:
    return isinstance(item, Mapping) and item.keys() == _IS_REFERENCE and isinstance(item.get("customer_id"), str)


def _resolve_one(body: Mapping[str, Any]) -> tuple[dict[str, Any], RecordCheck | None]:
    """The record to score, and its check when the body is a full record (None for a reference)."""
    if _is_reference(body):
        stored = _stored_records([body["customer_id"]]).get(body["customer_id"])
        if stored is None:
            raise ScoringInputError({"customer_id": ["No stored customer with this customer_id."]})
        return stored, None
    check = check_record(body)
    if check.errors:
        raise ScoringInputError(check.errors)
    return check.record, check


def prediction_score(*, body: Mapping[str, Any], actor: Actor = SYSTEM, store: bool = True) -> dict[str, Any]:
    """Score one customer record, or ``{"customer_id"}`` of a stored one; return the contract's
    prediction object.

    Stored (``store``): the prediction with the inputs it was scored with, and for a full record
    the customer too (source ``api:prediction``, as POST customers/ would: same checks, same
    quality report, same audit entry), in one transaction. Not stored (a what-if): nothing is
    written and ``prediction_id`` is None.
    """
    started = time.perf_counter()
    record, check = _resolve_one(body)
    model = active_model()
    version_id, version, scorer = model.pick(record["customer_id"])
    probability, factors = scorer.score_one(record, TOP_FACTORS)
    probability = round(probability, 6)
    level = risk_level(probability).value
    tier = tier_actions().get(level, NO_TIER)
    now = timezone.now()
    prediction = {
        "prediction_id": writes.uuid_text(writes.time_ordered_uuids(1)[0]),
        "customer_id": record["customer_id"],
        "churn_probability": probability,
        "risk_level": level,
        "recommendations": tier.recommendations,
        "offer": tier.offer,
        "model_version": version,
        "top_factors": [f.as_dict() for f in factors],
        "created_at": now.isoformat().replace("+00:00", "Z"),
    }
    constants = {
        "model_version_id": version_id,
        "source": PredictionSource.API,
        "latency_ms": round((time.perf_counter() - started) * 1000, 3),
        "department_id": actor.department_id,
        "requested_by_key_id": actor.api_key_id,
        "requested_by_user_id": actor.user_id,
        "request_id": (actor.request_id or "")[:64],
        "created_at": now,
    }
    if not store:
        prediction["prediction_id"] = None
    elif check is None:
        _insert_one(prediction, constants, record)
    elif copy_supported():
        # The customer commits with its prediction, and as the prediction does: without waiting
        # for the WAL flush (DATABASE_RELAXED_COMMIT). Waiting cost 2.5-4.5 ms of a 5-7 ms call
        # here; a database crash can lose the last fraction of a second of scoring calls, customer
        # and prediction together, never one without the other. POST customers/ still waits.
        # One statement: the customer's upsert and its audit entry are the WITH clause of the
        # prediction's INSERT (four round trips before: SET, upsert, insert, commit).
        cte = customer_upsert_scored_cte(check=check, source=PREDICTION_CUSTOMER_SOURCE, actor=actor)
        _insert_one(prediction, constants, record, before=cte)
    else:
        with relaxed_commit():
            customer_upsert_scored(check=check, source=PREDICTION_CUSTOMER_SOURCE, actor=actor)
            _insert_one(prediction, constants, record, relaxed=False)
    if store:
        shadow_submit(record=record, version_id=version_id, probability=probability, level=level)  # after the response
    metrics.count_scored(model_version=version, levels=[level], probabilities=[probability], source="api")
    metrics.PREDICTION_LATENCY.labels("single").observe(time.perf_counter() - started)
    return prediction


def _insert_one(
    prediction: dict[str, Any], constants: dict[str, Any], record: Mapping[str, Any], *, relaxed: bool = True,
    before: tuple[str, list[Any]] | None = None,
) -> None:
    """Store one scored record (see writes.insert_prediction) with the snapshot of its inputs."""
    row = {column: cells[0] for column, cells in writes.contract_cells([prediction]).items()}
    row["inputs"] = writes.copy_text(snapshot_text(record))
    writes.insert_prediction(row, constants, relaxed=relaxed, before=before)


# --- many records ----------------------------------------------------------------------------


@dataclass
class BatchOutcome:
    """``predictions`` are contract-shaped dicts in input order (rows with errors left out)."""

    predictions: list[dict[str, Any]]
    errors: dict[int, dict[str, list[str]]]
    result: ValidationResult
    model: LoadedModel | None


def _write_rows(
    rows: list[dict[str, Any]], version_ids: list[int], constants: dict[str, Any], inputs: list[str],
    *, relaxed: bool = True,
) -> None:
    """Store scored rows (contract-shaped dicts plus per-batch constants) with the snapshot of
    the inputs each was scored with (COPY cells, see churn_ml.inputs); ``relaxed=False`` inside
    a transaction that also writes what must be durable.

    One COPY from prepared cells (writes.copy_predictions): no model instances, which cost
    ~0.1 ms each to build, and the repeated JSON (recommendations per level) serialised once.
    """
    cells = writes.contract_cells(rows)
    cells["model_version_id"] = version_ids
    cells["inputs"] = inputs
    with relaxed_commit() if relaxed else transaction.atomic():
        writes.copy_predictions(len(rows), cells, constants)


def predictions_score_batch(
    *, items: Sequence[Any], actor: Actor = SYSTEM, source: str = PredictionSource.BATCH_REQUEST, store: bool = True
) -> BatchOutcome:
    """Score up to a few thousand records in one vectorised call; per-item errors, input order kept.

    As prediction_score: stored, the predictions keep their inputs and the full records' customers
    are upserted (source ``api:prediction``, the last record of a customer_id wins) in the same
    transaction; not stored (a what-if), nothing is written and each ``prediction_id`` is None.
    """
    started = time.perf_counter()
    items = list(items)
    reference_rows = [i for i, item in enumerate(items) if _is_reference(item)]
    references = frozenset(reference_rows)
    missing: dict[int, dict[str, list[str]]] = {}
    if reference_rows:
        stored = _stored_records([items[i]["customer_id"] for i in reference_rows])
        for i in reference_rows:
            found = stored.get(items[i]["customer_id"])
            if found is None:
                missing[i] = {"customer_id": ["No stored customer with this customer_id."]}
            else:
                items[i] = found
    result = validate_records(items)
    errors = {**result.errors, **missing}
    rows = np.array([i for i in range(len(items)) if i not in errors], dtype=np.int64)
    if len(rows) == 0:
        return BatchOutcome(predictions=[], errors=errors, result=result, model=None)
    model = active_model()
    ids = result.columns["customer_id"]
    row_list = rows.tolist()
    # An A/B test splits the batch by customer: each arm is scored in one vectorised call.
    arms = [(model.version_id, model.version, model.scorer, row_list)]
    if model.challenger is not None:
        challenger = model.challenger
        bucket = {i: ab_bucket(ids[i]) < challenger.traffic_percent for i in row_list}
        arms = [
            (model.version_id, model.version, model.scorer, [i for i in row_list if not bucket[i]]),
            (challenger.version_id, challenger.version, challenger.scorer, [i for i in row_list if bucket[i]]),
        ]
    scored: dict[int, tuple[float, list[Any], int, str]] = {}
    for version_id, version, scorer, members in arms:
        if not members:
            continue
        index = np.asarray(members, dtype=np.int64)
        columns = {name: col[index] for name, col in result.columns.items()}
        arm_p = np.round(scorer.predict_proba(columns), 6).tolist()
        arm_f = scorer.explain(columns, TOP_FACTORS)
        for k, i in enumerate(members):
            scored[i] = (arm_p[k], arm_f[k], version_id, version)
    probabilities = [scored[i][0] for i in row_list]
    factors = [scored[i][1] for i in row_list]
    levels = risk_levels(probabilities).tolist()
    tiers = tier_actions()
    now = timezone.now()
    created_at = now.isoformat().replace("+00:00", "Z")
    prediction_ids = [writes.uuid_text(h) for h in writes.time_ordered_uuids(len(row_list))]
    out = [
        {
            "prediction_id": prediction_ids[k],
            "customer_id": ids[i],
            "churn_probability": probabilities[k],
            "risk_level": levels[k],
            "recommendations": tiers.get(levels[k], NO_TIER).recommendations,
            "offer": tiers.get(levels[k], NO_TIER).offer,
            "model_version": scored[i][3],
            "top_factors": [f.as_dict() for f in factors[k]],
            "created_at": created_at,
        }
        for k, i in enumerate(row_list)
    ]
    constants = {
        "source": source,
        "latency_ms": round((time.perf_counter() - started) * 1000 / len(rows), 3),
        "department_id": actor.department_id,
        "requested_by_key_id": actor.api_key_id,
        "requested_by_user_id": actor.user_id,
        "request_id": (actor.request_id or "")[:64],
        "created_at": now,
    }
    if not store:
        for row in out:
            row["prediction_id"] = None
    else:
        inputs = snapshot_texts({name: col[rows] for name, col in result.columns.items()}, escape=writes.copy_text)
        full = [i for i in row_list if i not in references]
        version_ids = [scored[i][2] for i in row_list]
        if not full:
            _write_rows(out, version_ids, constants, inputs)
        else:
            with relaxed_commit():  # as the single path: customers commit with their predictions
                customers_bulk_upsert(result=result, rows=full, source=PREDICTION_CUSTOMER_SOURCE, actor=actor)
                _write_rows(out, version_ids, constants, inputs, relaxed=False)
    for version in {row["model_version"] for row in out}:
        arm = [row for row in out if row["model_version"] == version]
        metrics.count_scored(model_version=version, levels=[r["risk_level"] for r in arm],
                             probabilities=[r["churn_probability"] for r in arm], source=source)
    metrics.PREDICTION_LATENCY.labels("batch").observe(time.perf_counter() - started)
    return BatchOutcome(predictions=out, errors=errors, result=result, model=model)


def predictions_score_stored(
    *, customer_ids: Sequence[str], actor: Actor = SYSTEM, source: str = PredictionSource.RESCORE
) -> int:
    """Re-score stored customers (e.g. after an event changed them); returns how many were scored."""
    scored = 0
    ids = list(dict.fromkeys(customer_ids))
    for start in range(0, len(ids), RESCORE_BATCH_SIZE):
        outcome = predictions_score_batch(
            items=[{"customer_id": cid} for cid in ids[start : start + RESCORE_BATCH_SIZE]], actor=actor, source=source
        )
        scored += len(outcome.predictions)
    return scored

