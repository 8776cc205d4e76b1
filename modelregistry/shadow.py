"""Shadow scoring: a candidate version scores a share of single-record requests off the response path.

``shadow_submit`` (called by predictions.services.prediction_score after the answer is built)
only appends the record to a per-process list: nothing is scored or written while the client
waits. Django's ``request_finished`` signal, sent after the response has gone out, scores the
pending records with the shadow version and buffers the rows; the buffer is written in one
bulk insert when it holds SHADOW_WRITE_BATCH rows or is older than SHADOW_MAX_BUFFER_SECONDS
(and when a shadow report is read). Shadow rows are ShadowPrediction, never Prediction: they
never reach customers, campaigns or the active model's metrics (they are counted with
source="shadow").

The configuration (which version, which share) is re-read from the database at most once a
second per process, like the active model.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.core.signals import request_finished
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from accounts.services import Actor, audit_record
from churn_infra import metrics
from churn_ml import artifact as ml_artifact
from churn_ml.performance import paired_auc_test
from churn_ml.tiers import risk_level
from customers.models import Outcome
from modelregistry import loader
from modelregistry.models import ModelStatus, ModelVersion, ShadowDeployment, ShadowPrediction, ShadowStatus
from modelregistry.services import PromotionRefused, model_event_record

logger = logging.getLogger(__name__)

CHECK_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class _Config:
    deployment_id: int
    version_id: int
    version: str
    share: float
    scorer: Any


_lock = threading.Lock()
_config: _Config | None = None
_checked_at = -1e9
_pending: list[tuple[dict[str, Any], int, float, str, Any]] = []
_rows: list[ShadowPrediction] = []
_oldest = 0.0


def _current() -> _Config | None:
    global _config, _checked_at
    now = time.monotonic()
    if now - _checked_at < CHECK_INTERVAL_SECONDS:
        return _config
    _checked_at = now
    row = (
        ShadowDeployment.objects.filter(status=ShadowStatus.RUNNING)
        .values_list("pk", "model_version_id", "share")
        .first()
    )
    if row is None:
        _config = None
    elif _config is None or _config.deployment_id != row[0]:
        version = ModelVersion.objects.get(pk=row[1])
        try:
            scorer = loader.load_version(version).scorer
        except (ml_artifact.ArtifactError, OSError, ValueError):
            logger.exception("Shadow version %s cannot be loaded; shadow paused", version.version)
            _config = None
            return None
        _config = _Config(row[0], version.pk, version.version, float(row[2]), scorer)
    return _config


def forget_local() -> None:
    global _checked_at
    _checked_at = -1e9


def shadow_submit(*, record: dict[str, Any], version_id: int, probability: float, level: str) -> None:
    """Queue a scored request for the shadow (when one runs and this request falls in its share)."""
    config = _current()
    if config is None or random.random() >= config.share:  # noqa: S311 - sampling, not security
        return
    with _lock:
        _pending.append((record, version_id, probability, level, timezone.now()))


def _score_pending() -> None:
    global _oldest
    config = _config
    with _lock:
        pending = _pending[:]
        _pending.clear()
    if not pending or config is None:
        return
    for record, version_id, probability, level, when in pending:
        p = round(config.scorer.score_one(record, 0)[0], 6)
        _rows.append(ShadowPrediction(
            deployment_id=config.deployment_id, customer_id=record["customer_id"], model_version_id=config.version_id,
            churn_probability=p, risk_level=risk_level(p).value, active_version_id=version_id,
            active_probability=probability, active_risk_level=level, created_at=when,
        ))
    if not _oldest:
        _oldest = time.monotonic()


def shadow_flush() -> int:
    """Score what is pending and write every buffered row now; returns rows written."""
    global _oldest
    _score_pending()
    rows = _rows[:]
    _rows.clear()
    _oldest = 0.0
    if not rows:
        return 0
    ShadowPrediction.objects.bulk_create(rows, batch_size=1000)
    metrics.count_scored(
        model_version=_config.version if _config else "",
        levels=[r.risk_level for r in rows], probabilities=[r.churn_probability for r in rows], source="shadow",
    )
    return len(rows)


def _after_response(**_: Any) -> None:
    """request_finished: the response is sent; do the shadow's work now."""
    if not _pending and not _rows:
        return
    try:
        _score_pending()
        if len(_rows) >= settings.SHADOW_WRITE_BATCH or (
            _rows and time.monotonic() - _oldest >= settings.SHADOW_MAX_BUFFER_SECONDS
        ):
            shadow_flush()
    except Exception:  # the client has its answer; a shadow failure must never surface
        logger.exception("Shadow scoring failed")
        _rows.clear()


request_finished.connect(_after_response, dispatch_uid="modelregistry.shadow")


# --- operator actions -----------------------------------------------------------------------


@transaction.atomic
def shadow_start(*, version: str, share: float, actor: Actor) -> ShadowDeployment:
    """Let ``version`` score ``share`` (0..1] of single-record requests in the shadow."""
    if not 0.0 < share <= 1.0:
        raise PromotionRefused("The shadow's share must be above 0 and at most 1.")
    if ShadowDeployment.objects.select_for_update().filter(status=ShadowStatus.RUNNING).exists():
        raise PromotionRefused("A shadow is already running; stop it first.")
    target = ModelVersion.objects.get(version=version)
    if target.status in (ModelStatus.ACTIVE, ModelStatus.FAILED, ModelStatus.ARCHIVED):
        raise PromotionRefused(f"{target.version} is {target.status} and cannot run in the shadow.")
    try:
        loader.load_version(target)
    except (ml_artifact.ArtifactError, OSError) as exc:
        raise PromotionRefused(f"{target.version}'s artifact cannot be loaded: {exc}") from exc
    deployment = ShadowDeployment.objects.create(model_version=target, share=share, started_by=actor.label)
    details = {"version": target.version, "share": share}
    model_event_record(version=target, kind="shadow_started", actor=actor, details=details)
    audit_record(actor=actor, action="model.shadow_start", obj=deployment, details=details)
    transaction.on_commit(forget_local)
    return deployment


@transaction.atomic
def shadow_stop(*, actor: Actor) -> ShadowDeployment:
    deployment = ShadowDeployment.objects.select_for_update().filter(status=ShadowStatus.RUNNING).first()
    if deployment is None:
        raise PromotionRefused("No shadow is running.")
    deployment.status = ShadowStatus.STOPPED
    deployment.stopped_at = timezone.now()
    deployment.stopped_by = actor.label
    deployment.save(update_fields=["status", "stopped_at", "stopped_by"])
    details = {"version": deployment.model_version.version, "share": deployment.share}
    model_event_record(version=deployment.model_version, kind="shadow_stopped", actor=actor, details=details)
    audit_record(actor=actor, action="model.shadow_stop", obj=deployment, details=details)
    transaction.on_commit(forget_local)
    return deployment


def shadow_report(*, deployment: ShadowDeployment) -> dict[str, Any]:
    """The shadow next to the active answers on the same requests, and on outcomes once they arrive."""
    shadow_flush()
    rows = list(
        ShadowPrediction.objects.filter(deployment=deployment).values_list(
            "churn_probability", "active_probability", "risk_level", "active_risk_level"
        )
    )
    horizon = timedelta(days=settings.LIVE_PERFORMANCE_HORIZON_DAYS)
    later = Outcome.objects.filter(
        customer__customer_id=OuterRef("customer_id"), observed_at__gte=OuterRef("created_at")
    ).order_by("observed_at", "pk")
    labelled = [
        (s, a, y)
        for s, a, y, when, created in ShadowPrediction.objects.filter(deployment=deployment)
        .annotate(churned=Subquery(later.values("churned")[:1]), observed=Subquery(later.values("observed_at")[:1]))
        .filter(churned__isnull=False)
        .values_list("churn_probability", "active_probability", "churned", "observed", "created_at")
        if when - created <= horizon
    ]
    comparison = None
    if labelled:
        shadow_p = np.array([r[0] for r in labelled])
        active_p = np.array([r[1] for r in labelled])
        outcomes = np.array([r[2] for r in labelled], dtype=bool)
        result = paired_auc_test(active_p, shadow_p, outcomes)
        if result is not None:
            comparison = {
                "n": result.n, "positives": result.positives, "shadow_roc_auc": round(result.auc_b, 6),
                "active_roc_auc": round(result.auc_a, 6), "difference": round(result.difference, 6),
                "ci95": [round(x, 6) for x in result.ci95], "p_value": result.p_value, "p_worse": result.p_worse,
                "method": result.method,
            }
    n = len(rows)
    return {
        "id": deployment.pk,
        "version": deployment.model_version.version,
        "share": deployment.share,
        "status": deployment.status,
        "started_by": deployment.started_by,
        "started_at": deployment.created_at,
        "stopped_at": deployment.stopped_at,
        "paired": {
            "n": n,
            "shadow_mean_probability": round(float(np.mean([r[0] for r in rows])), 6) if n else None,
            "active_mean_probability": round(float(np.mean([r[1] for r in rows])), 6) if n else None,
            "risk_level_disagreement": round(sum(r[2] != r[3] for r in rows) / n, 6) if n else None,
            "outcomes": len(labelled),
            "comparison": comparison,
        },
    }
