"""Retraining: when to retrain (stored trigger evaluations), and the retraining run itself.

Triggers, each evaluated against the active model and stored as a TriggerEvaluation with its
value, threshold and decision:

* drift: population stability index of recent inputs (customers written in the window and the
  records sent for scoring) against the active model's training reference, per contract field,
  each against its own threshold at this sample size (churn_ml.drift.drift_test: the PSI of
  resamples of the reference at the batch's n, quantile 1 - DRIFT_FALSE_ALARM_RATE / fields); any
  field above its threshold fires. The evaluation stores the worst field's PSI, its threshold and
  the Bonferroni p-value;
* accuracy: each outcome recorded in the window against the active model's latest prediction
  for that customer made before the outcome was observed; accuracy below
  RETRAIN_ACCURACY_THRESHOLD (0.80) fires;
* confidence: mean max(p, 1 - p) of the active model's most recent predictions below
  RETRAIN_CONFIDENCE_THRESHOLD (0.70) fires;
* schedule (monthly, beat) and manual (admin) always start a run unless one is in progress.

A run trains on the stored customers with their latest outcome, measures the candidate and the
active model on the same held-out split, registers the candidate as a testing version, and
promotes it only when RETRAIN_PROMOTION_POLICY allows: "never" (the default) or "if_better"
(held-out ROC AUC at least RETRAIN_PROMOTION_MARGIN above the active model's on those rows).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.services import SYSTEM, Actor, actor_for_user, audit_record
from churn_infra import metrics
from churn_infra.replica import replica_reads
from churn_ml.deferred import deferred
from churn_ml.drift import ReferenceStats, drift_test
from churn_ml.evaluation import live_metrics
from churn_ml.schema import RECORD_FIELDS, validate_columns, validate_records
from customers.models import Customer
from modelregistry import loader
from modelregistry.models import (
    ModelVersion,
    RetrainingDecision,
    RetrainingRun,
    RetrainingStatus,
    TriggerDecision,
    TriggerEvaluation,
    TriggerKind,
)
from modelregistry.ports import prediction_reader
from modelregistry.services import PromotionRefused, model_promote, model_version_register, training_data_from_store

# Training imports scikit-learn (~86 MB per process): named here, imported by the first process
# that trains (a worker), never by a web worker that only serves (churn_ml.deferred).
training = deferred("churn_ml.training")

logger = logging.getLogger(__name__)

RETRAIN_SEED = 42
EVIDENCE_TRIGGERS = (TriggerKind.DRIFT, TriggerKind.ACCURACY, TriggerKind.CONFIDENCE)


@dataclass
class Measurement:
    """A trigger's figure: ``fired`` is None when there was too little data to judge."""

    kind: str
    value: float | None
    threshold: float
    sample_size: int
    fired: bool | None
    details: dict[str, Any] = field(default_factory=dict)
    p_value: float | None = None


# --- the three measurements -------------------------------------------------------------------


def recent_inputs(*, since: datetime, limit: int) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Canonical columns of recent inputs: customers written since, and records scored since."""
    # One row per customer: the record it was last scored with, else its stored record. A customer
    # both stored and scored in the window counted twice would double n and tighten the drift
    # threshold (computed at n) until ordinary data looks drifted.
    scored, seen = [], set()
    for record in prediction_reader().recent_scored_inputs(since=since, limit=limit):
        if record["customer_id"] not in seen:
            seen.add(record["customer_id"])
            scored.append(record)
    customers = [
        row
        for row in Customer.objects.filter(updated_at__gte=since).order_by("-updated_at").values_list(*RECORD_FIELDS)[
            :limit
        ]
        if row[0] not in seen
    ]
    columns: dict[str, np.ndarray] = {}
    n = 0
    if customers:
        stored = validate_columns(
            {name: [r[i] for r in customers] for i, name in enumerate(RECORD_FIELDS)}, len(customers)
        )
        columns = {name: col[stored.valid] for name, col in stored.columns.items()}
        n = int(stored.valid.sum())
    if scored:
        sent = validate_records(scored, strict=False)
        valid = sent.valid
        more = {name: col[valid] for name, col in sent.columns.items()}
        columns = {name: np.concatenate([columns[name], more[name]]) if columns else more[name] for name in more}
        n += int(valid.sum())
    return columns, {"customers": len(customers), "scored_records": len(scored), "valid_rows": n}


def measure_drift(active: ModelVersion, *, since: datetime) -> Measurement:
    """PSI per field of recent inputs, each against its threshold at this sample size (drift_test)."""
    if not active.reference_stats:
        return Measurement(TriggerKind.DRIFT, None, 0.0, 0, None, {"reason": "The model has no reference."})
    reference = ReferenceStats.from_dict(active.reference_stats)
    columns, sources = recent_inputs(since=since, limit=settings.RETRAIN_DRIFT_SAMPLE_SIZE)
    n = sources["valid_rows"]
    if n < settings.RETRAIN_MIN_SAMPLES:
        return Measurement(TriggerKind.DRIFT, None, 0.0, n, None, {"sources": sources})
    result = drift_test(
        reference, columns, false_alarm_rate=settings.DRIFT_FALSE_ALARM_RATE, resamples=settings.DRIFT_NULL_RESAMPLES
    )
    for feature, value in result.psi.items():
        metrics.DRIFT_PSI.labels(feature=feature).set(value)
    worst = result.worst
    return Measurement(
        TriggerKind.DRIFT,
        result.psi[worst] if worst else None,
        result.thresholds[worst] if worst else 0.0,
        n,
        bool(result.drifted),
        {"max_feature": worst, "sources": sources, **result.as_dict()},
        p_value=result.p_value,
    )


def measure_accuracy(active: ModelVersion, *, since: datetime) -> Measurement:
    """Accuracy of the active model's last prediction before each outcome observed since ``since``."""
    threshold = settings.RETRAIN_ACCURACY_THRESHOLD
    pairs = prediction_reader().outcome_pairs(version_id=active.pk, outcomes_since=since)
    report = live_metrics(pairs)
    details = {"auc": report.roc_auc, "positive_rate": report.positive_rate, "brier": report.brier}
    if report.n < settings.RETRAIN_MIN_SAMPLES or report.accuracy is None:
        return Measurement(TriggerKind.ACCURACY, report.accuracy, threshold, report.n, None, details)
    metrics.MODEL_LIVE_ACCURACY.labels(model_version=active.version).set(report.accuracy)
    if report.roc_auc is not None:
        metrics.MODEL_LIVE_AUC.labels(model_version=active.version).set(report.roc_auc)
    return Measurement(
        TriggerKind.ACCURACY, round(report.accuracy, 6), threshold, report.n, report.accuracy < threshold, details
    )


def measure_confidence(active: ModelVersion, *, since: datetime) -> Measurement:
    """Mean max(p, 1 - p) over the active model's most recent predictions (at most the sample size)."""
    threshold = settings.RETRAIN_CONFIDENCE_THRESHOLD
    n, mean = prediction_reader().recent_confidence(
        version_id=active.pk, since=since, limit=settings.RETRAIN_DRIFT_SAMPLE_SIZE
    )
    if n < settings.RETRAIN_MIN_SAMPLES or mean is None:
        return Measurement(TriggerKind.CONFIDENCE, mean, threshold, n, None)
    metrics.MODEL_MEAN_CONFIDENCE.labels(model_version=active.version).set(mean)
    return Measurement(TriggerKind.CONFIDENCE, round(float(mean), 6), threshold, n, mean < threshold)


# --- evaluation -------------------------------------------------------------------------------


def _blocked(*, evidence: bool, now: datetime) -> str | None:
    """Why no retraining may start now, or None."""
    if RetrainingRun.objects.filter(in_progress=True).exists():
        return "a retraining is already queued or running"
    if evidence:
        recent = RetrainingRun.objects.filter(
            created_at__gte=now - timedelta(hours=settings.RETRAIN_COOLDOWN_HOURS)
        ).exclude(status=RetrainingStatus.FAILED)
        if recent.exists():
            return f"a retraining ran within the last {settings.RETRAIN_COOLDOWN_HOURS} h"
    return None


def retraining_triggers_evaluate(*, actor: Actor = SYSTEM, now: datetime | None = None) -> list[TriggerEvaluation]:
    """Measure the drift, accuracy and confidence triggers; store each; start a retraining if one fires."""
    now = now or timezone.now()
    active = ModelVersion.objects.active().first()
    if active is None:
        with transaction.atomic():
            return [
                TriggerEvaluation.objects.create(kind=kind, decision=TriggerDecision.NO_MODEL)
                for kind in EVIDENCE_TRIGGERS
            ]
    since = now - timedelta(days=settings.RETRAIN_WINDOW_DAYS)
    # Live performance is read-only work over a window of days: a replica's lag does not matter.
    with replica_reads():
        measurements = [
            measure_drift(active, since=since),
            measure_accuracy(active, since=since),
            measure_confidence(active, since=since),
        ]
    fired = [m for m in measurements if m.fired]
    run = None
    blocked = None
    if fired:
        blocked = _blocked(evidence=True, now=now)
        if blocked is None:
            reason = "; ".join(f"{m.kind} {m.value:.4g} beyond {m.threshold:g}" for m in fired)
            run = retraining_run_start(trigger=fired[0].kind, actor=actor, reason=reason)
            if run is None:
                blocked = "a retraining is already queued or running"
    evaluations = []
    with transaction.atomic():
        for m in measurements:
            if m.fired is None:
                decision = TriggerDecision.INSUFFICIENT_DATA
            elif not m.fired:
                decision = TriggerDecision.OK
            elif run is not None:
                decision = TriggerDecision.TRIGGERED
            else:
                decision = TriggerDecision.COOLDOWN
            details = dict(m.details)
            if m.fired and blocked:
                details["blocked"] = blocked
            if m.fired is None:
                details.setdefault("minimum_samples", settings.RETRAIN_MIN_SAMPLES)
            evaluations.append(
                TriggerEvaluation.objects.create(
                    kind=m.kind,
                    model_version=active,
                    value=m.value,
                    threshold=m.threshold,
                    decision=decision,
                    sample_size=m.sample_size,
                    p_value=m.p_value,
                    details=details,
                    retraining_run=run if m.fired else None,
                )
            )
    logger.info("Retraining triggers: %s", ", ".join(f"{e.kind}={e.value} ({e.decision})" for e in evaluations))
    return evaluations


def retraining_scheduled(
    *, actor: Actor = SYSTEM, trigger: str = TriggerKind.SCHEDULE, reason: str = ""
) -> TriggerEvaluation:
    """The monthly (or a manual) retraining: stored as an evaluation, started unless one is in progress."""
    active = ModelVersion.objects.active().first()
    run = retraining_run_start(trigger=trigger, actor=actor, reason=reason or f"{trigger} retraining")
    decision = TriggerDecision.TRIGGERED if run is not None else TriggerDecision.COOLDOWN
    details = {} if run is not None else {"blocked": "a retraining is already queued or running"}
    return TriggerEvaluation.objects.create(
        kind=trigger, model_version=active, decision=decision, details=details, retraining_run=run
    )


# --- the run ----------------------------------------------------------------------------------


def retraining_run_start(*, trigger: str, actor: Actor = SYSTEM, reason: str = "") -> RetrainingRun | None:
    """Queue a retraining; None when one is already queued or running."""
    try:
        with transaction.atomic():
            run = RetrainingRun.objects.create(
                trigger=trigger,
                policy=settings.RETRAIN_PROMOTION_POLICY,
                margin=settings.RETRAIN_PROMOTION_MARGIN,
                active_version=ModelVersion.objects.active().first(),
                reason=reason,
                requested_by=actor.label[:200],
                requested_by_user=actor.user if actor.user is not None and actor.user.pk else None,
            )
            audit_record(
                actor=actor,
                action="model.retrain.start",
                obj=run,
                details={"trigger": trigger, "reason": reason, "policy": run.policy},
            )
    except IntegrityError:
        # The partial unique index on in_progress: another retraining is queued or running.
        return None
    run_id = run.pk
    transaction.on_commit(lambda: _send_run(run_id))
    return run


def _send_run(run_id: int) -> None:
    from modelregistry.tasks import retrain_model

    retrain_model.apply_async(
        kwargs={"run_id": run_id},
        soft_time_limit=settings.RETRAIN_SOFT_TIME_LIMIT,
        time_limit=settings.RETRAIN_TIME_LIMIT,
    )


def _claim(run_id: int) -> RetrainingRun | None:
    """Mark the run running; None when it is finished, or running elsewhere within its time limit."""
    with transaction.atomic():
        run = RetrainingRun.objects.select_for_update().get(pk=run_id)
        now = timezone.now()
        if run.status in (RetrainingStatus.SUCCEEDED, RetrainingStatus.FAILED):
            return None
        if (
            run.status == RetrainingStatus.RUNNING
            and run.started_at
            and (now - run.started_at < timedelta(seconds=settings.RETRAIN_TIME_LIMIT))
        ):
            return None  # a redelivered message while the first delivery still trains
        run.status = RetrainingStatus.RUNNING
        run.started_at = now
        run.save(update_fields=["status", "started_at", "updated_at"])
        return run


def retraining_run_execute(*, run_id: int) -> RetrainingRun | None:
    """Train, compare on the same held-out split, register as testing, apply the promotion policy."""
    run = _claim(run_id)
    if run is None:
        return None
    user = run.requested_by_user
    actor = actor_for_user(user) if user is not None else SYSTEM
    try:
        data = training_data_from_store()
        trained = training.train(data.frame, data.labels, seed=RETRAIN_SEED, algorithm=settings.RETRAIN_ALGORITHM)
        candidate_report = training.evaluate(trained, data.frame, data.labels, seed=RETRAIN_SEED)
        active = ModelVersion.objects.active().first()
        active_report = None
        if active is not None:
            active_scorer = loader.load_version(active).scorer
            active_report = training.evaluate(active_scorer, data.frame, data.labels, seed=RETRAIN_SEED)
        version = model_version_register(
            trained=trained,
            actor=actor,
            training_source=f"store: retraining {run.pk} ({run.trigger})",
            notes=f"Retraining {run.pk}, trigger {run.trigger}: {run.reason}"[:2000],
            backtest=training.backtest(
                data.frame, data.labels, data.dates, seed=RETRAIN_SEED, algorithm=trained.algorithm
            ),
        )
    except Exception as exc:  # recorded on the run; nothing was registered
        logger.exception("Retraining %s failed", run.pk)
        _finish(run, status=RetrainingStatus.FAILED, error=f"{type(exc).__name__}: {exc}", actor=actor)
        return run
    run.candidate_version = version
    run.active_version = active
    run.training_rows = len(data.frame)
    run.candidate_auc = candidate_report["roc_auc"]
    run.active_auc = active_report["roc_auc"] if active_report else None
    run.details = {"candidate": candidate_report, "active": active_report, "positive_rate": float(data.labels.mean())}
    run.decision, run.decision_reason = _apply_policy(run, version, active, actor)
    _finish(run, status=RetrainingStatus.SUCCEEDED, actor=actor)
    return run


def _apply_policy(
    run: RetrainingRun, version: ModelVersion, active: ModelVersion | None, actor: Actor
) -> tuple[str, str]:
    if run.policy != "if_better":
        return RetrainingDecision.KEPT_TESTING, f"Policy {run.policy!r}: {version.version} stays a testing version."
    if active is not None:
        if run.candidate_auc is None or run.active_auc is None:
            return RetrainingDecision.NOT_BETTER, "ROC AUC is undefined on the held-out rows (one class only)."
        if run.candidate_auc < run.active_auc + run.margin:
            return RetrainingDecision.NOT_BETTER, (
                f"Held-out ROC AUC {run.candidate_auc:.4f} is not {run.margin} above the active model's "
                f"{run.active_auc:.4f} on the same rows."
            )
    why = (
        f"retraining {run.pk} policy if_better: held-out ROC AUC {run.candidate_auc:.4f} vs the active model's "
        f"{run.active_auc:.4f} on the same rows (margin {run.margin})"
        if active is not None
        else f"retraining {run.pk} policy if_better: no model was active"
    )
    try:
        # Not forced: the registry's gate compares both models on the same rows too, and its
        # comparison lands in the promotion's model event.
        model_promote(version=version.version, actor=actor, reason=why)
    except PromotionRefused as exc:
        return RetrainingDecision.REFUSED, str(exc)
    return RetrainingDecision.PROMOTED, why[0].upper() + why[1:] + "."


def _finish(run: RetrainingRun, *, status: str, actor: Actor, error: str = "") -> None:
    now = timezone.now()
    with transaction.atomic():
        run.status = status
        run.in_progress = False
        run.error = error
        run.finished_at = now
        run.duration_seconds = round((now - (run.started_at or now)).total_seconds(), 3)
        run.save()
        audit_record(
            actor=actor,
            action="model.retrain.finish",
            obj=run,
            details={
                "status": status,
                "decision": run.decision,
                "candidate": run.candidate_version.version if run.candidate_version else None,
                "candidate_auc": run.candidate_auc,
                "active_auc": run.active_auc,
                "error": error,
            },
        )
    logger.info("Retraining %s %s: %s %s", run.pk, status, run.decision, run.decision_reason or error)
