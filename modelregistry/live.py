"""Live performance per version and per A/B arm: the one writer and the readers of ModelLivePerformance.

The figures are computed by predictions.live_performance (which can read predictions) and
handed down here; the API, the admin and the metrics read them from this table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction

from modelregistry.models import ModelLivePerformance, ModelVersion

EMPTY_REALIZED = {
    "n": 0, "positives": 0, "roc_auc": None, "roc_auc_ci95": None, "brier": None, "ece": None, "accuracy": None,
}


def live_scope(ab_test_id: int | None = None, arm: str = "") -> str:
    return f"ab:{ab_test_id}:{arm}" if ab_test_id is not None else "all"


@transaction.atomic
def live_performance_store(
    *,
    version_id: int,
    as_of: datetime,
    horizon_days: int,
    figures: dict[str, Any],
    ab_test_id: int | None = None,
    arm: str = "",
) -> ModelLivePerformance:
    """Write one version's (or arm's) live figures: ``figures`` has predictions, mean_probability,
    realized, estimated and report."""
    row, _ = ModelLivePerformance.objects.update_or_create(
        model_version_id=version_id,
        scope=live_scope(ab_test_id, arm),
        defaults={
            "ab_test_id": ab_test_id,
            "arm": arm,
            "as_of": as_of,
            "horizon_days": horizon_days,
            "predictions": figures.get("predictions", 0),
            "mean_probability": figures.get("mean_probability"),
            "realized": figures.get("realized") or dict(EMPTY_REALIZED),
            "estimated": figures.get("estimated") or {},
            "report": figures.get("report") or {},
        },
    )
    return row


def live_performance_of(version: ModelVersion, *, ab_test_id: int | None = None, arm: str = "") -> dict[str, Any]:
    """The contract's ``live`` object of a version (or arm); empty figures until the first refresh."""
    row = ModelLivePerformance.objects.filter(model_version=version, scope=live_scope(ab_test_id, arm)).first()
    ece = version.metrics.get("ece")
    if row is None:
        return {
            "as_of": None,
            "horizon_days": settings.LIVE_PERFORMANCE_HORIZON_DAYS,
            "realized": dict(EMPTY_REALIZED),
            "estimated": {"n": 0, "roc_auc": None, "accuracy": None, "method": "cbpe", "calibration_ece": ece,
                          "periods": []},
        }
    return {
        "as_of": row.as_of,
        "horizon_days": row.horizon_days,
        "realized": row.realized,
        "estimated": {**row.estimated, "calibration_ece": ece},
    }


def live_rows() -> list[ModelLivePerformance]:
    """Every stored row, for the metrics collector and the admin."""
    return list(ModelLivePerformance.objects.select_related("model_version").order_by("model_version_id", "scope"))


def live_rows_of(version: ModelVersion) -> list[ModelLivePerformance]:
    """A version's stored rows (overall and per A/B arm), for its admin page."""
    return list(ModelLivePerformance.objects.filter(model_version=version).order_by("scope"))
