"""Live performance per model version and per A/B arm, written to modelregistry's table.

Outcomes arrive through customers.signals.outcomes_recorded; the receiver below schedules one
refresh LIVE_PERFORMANCE_DEBOUNCE_SECONDS later (a burst of outcomes costs one refresh), on the
batch queue. A refresh, for every version that scored within the horizon:

* realized: each outcome observed within the last LIVE_PERFORMANCE_HORIZON_DAYS is joined to the
  version's latest prediction for that customer made before the outcome and at most the horizon
  before it; n, positives, ROC AUC with DeLong's 95% interval, Brier, ECE and accuracy;
* estimated: the version's latest prediction per customer within the horizon that no outcome
  has followed yet, estimated by CBPE (churn_ml.performance.cbpe), overall and per month;
* report: lift, gains, calibration and cuts of the realized pairs;
* per A/B arm: the same for the arm's predictions while the test ran.

It lives here, not in the registry, because it reads predictions (a higher layer than the
registry); the results are handed down through modelregistry.live.live_performance_store.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from churn_ml.evaluation import classification_metrics
from churn_ml.performance import cbpe, churn_report, roc_auc_ci
from customers.models import Customer, Outcome
from modelregistry.live import live_performance_store
from modelregistry.models import ABTest
from modelregistry.services import RISK_CUTS
from predictions.models import Prediction
from predictions.readers import PredictionReader

logger = logging.getLogger(__name__)

PENDING_KEY = "predictions:live-performance:pending"


def _tables() -> dict[str, str]:
    quote = connection.ops.quote_name
    return {
        "outcome": quote(Outcome._meta.db_table),
        "customer": quote(Customer._meta.db_table),
        "prediction": quote(Prediction._meta.db_table),
    }


def realized_pairs(*, since: Any, horizon: timedelta) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{version id: (probabilities, churned)} of each outcome observed since ``since`` and the
    version's latest prediction before it within ``horizon``."""
    t = _tables()
    # Names come from the models' metadata, quoted; the only value is a parameter.
    sql = f"""
        SELECT model_version_id, churn_probability, churned, created_at, observed_at FROM (
            SELECT p.model_version_id, p.churn_probability, o.churned, p.created_at, o.observed_at,
                   ROW_NUMBER() OVER (PARTITION BY o.id, p.model_version_id
                                      ORDER BY p.created_at DESC, p.id DESC) AS rank
            FROM {t["outcome"]} o
            JOIN {t["customer"]} c ON c.id = o.customer_id
            JOIN {t["prediction"]} p ON p.customer_id = c.customer_id AND p.created_at <= o.observed_at
            WHERE o.observed_at >= %s
        ) latest WHERE rank = 1
    """  # noqa: S608
    grouped: dict[int, tuple[list[float], list[bool]]] = defaultdict(lambda: ([], []))
    with connection.cursor() as cursor:
        cursor.execute(sql, [since])
        for version_id, probability, churned, created_at, observed_at in cursor.fetchall():
            if observed_at - created_at <= horizon:
                grouped[version_id][0].append(probability)
                grouped[version_id][1].append(bool(churned))
    return {k: (np.asarray(p, dtype=np.float64), np.asarray(y, dtype=bool)) for k, (p, y) in grouped.items()}


def unlabelled_predictions(*, since: Any) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{version id: (probabilities, months)} of each customer's latest prediction by the version
    since ``since`` that no outcome has followed yet."""
    t = _tables()
    sql = f"""
        SELECT model_version_id, churn_probability, created_at FROM (
            SELECT p.model_version_id, p.churn_probability, p.created_at, p.customer_id,
                   ROW_NUMBER() OVER (PARTITION BY p.customer_id, p.model_version_id
                                      ORDER BY p.created_at DESC, p.id DESC) AS rank
            FROM {t["prediction"]} p WHERE p.created_at >= %s
        ) latest
        WHERE rank = 1 AND NOT EXISTS (
            SELECT 1 FROM {t["outcome"]} o JOIN {t["customer"]} c ON c.id = o.customer_id
            WHERE c.customer_id = latest.customer_id AND o.observed_at >= latest.created_at
        )
    """  # noqa: S608
    grouped: dict[int, tuple[list[float], list[str]]] = defaultdict(lambda: ([], []))
    with connection.cursor() as cursor:
        cursor.execute(sql, [since])
        for version_id, probability, created_at in cursor.fetchall():
            grouped[version_id][0].append(probability)
            grouped[version_id][1].append(f"{created_at:%Y-%m}")
    return {k: (np.asarray(p, dtype=np.float64), np.asarray(m)) for k, (p, m) in grouped.items()}


def realized_figures(p: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    report = classification_metrics(p, y)
    interval = roc_auc_ci(p, y) if len(y) else None
    return {
        "n": report.n,
        "positives": int(y.sum()),
        "roc_auc": _r(report.roc_auc),
        "roc_auc_ci95": [_r(x) for x in interval.ci95] if interval else None,
        "roc_auc_variance": interval.variance if interval else None,
        "brier": _r(report.brier),
        "ece": _r(report.ece),
        "accuracy": _r(report.accuracy),
        "ci_method": "delong",
    }


def estimated_figures(p: np.ndarray, months: np.ndarray) -> dict[str, Any]:
    overall = cbpe(p)
    periods = []
    for month in sorted(set(months.tolist())):
        part = cbpe(p[months == month])
        periods.append({"period": month, "n": part.n, "roc_auc": _r(part.roc_auc), "accuracy": _r(part.accuracy)})
    return {
        "n": overall.n,
        "roc_auc": _r(overall.roc_auc),
        "accuracy": _r(overall.accuracy),
        "expected_positive_rate": _r(overall.expected_positive_rate),
        "method": "cbpe",
        "periods": periods,
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def _figures(pairs: tuple[np.ndarray, np.ndarray] | None, unlabelled: tuple[np.ndarray, np.ndarray] | None,
             predictions: int, mean: float | None) -> dict[str, Any]:
    p, y = pairs if pairs is not None else (np.zeros(0), np.zeros(0, dtype=bool))
    up, months = unlabelled if unlabelled is not None else (np.zeros(0), np.zeros(0, dtype=str))
    return {
        "predictions": predictions,
        "mean_probability": mean,
        "realized": realized_figures(p, y),
        "estimated": estimated_figures(up, months),
        "report": churn_report(p, y, cuts=RISK_CUTS) if len(y) else {},
    }


def live_performance_refresh() -> int:
    """Recompute and store every version's and A/B arm's live figures; returns rows written."""
    now = timezone.now()
    horizon_days = settings.LIVE_PERFORMANCE_HORIZON_DAYS
    horizon = timedelta(days=horizon_days)
    since = now - horizon
    pairs = realized_pairs(since=since, horizon=horizon)
    unlabelled = unlabelled_predictions(since=since)
    reader = PredictionReader()
    written = 0
    versions = set(pairs) | set(unlabelled)
    for version_id in sorted(versions):
        n, mean = reader.scored_summary(version_id=version_id, since=since, until=now)
        live_performance_store(
            version_id=version_id, as_of=now, horizon_days=horizon_days,
            figures=_figures(pairs.get(version_id), unlabelled.get(version_id), n, mean),
        )
        written += 1
    test = ABTest.objects.select_related("champion", "challenger").order_by("-created_at", "-pk").first()
    if test is not None:
        end = test.stopped_at or now
        for arm, version in (("champion", test.champion), ("challenger", test.challenger)):
            arm_pairs = reader.outcome_pairs(
                version_id=version.pk, outcomes_since=test.created_at, predicted_since=test.created_at,
                predicted_until=end,
            )
            p = np.array([x for x, _ in arm_pairs], dtype=np.float64)
            y = np.array([o for _, o in arm_pairs], dtype=bool)
            n, mean = reader.scored_summary(version_id=version.pk, since=test.created_at, until=end)
            live_performance_store(
                version_id=version.pk, as_of=now, horizon_days=horizon_days, ab_test_id=test.pk, arm=arm,
                figures=_figures((p, y), None, n, mean),
            )
            written += 1
    return written


def schedule_refresh(**_: Any) -> None:
    """Receiver of outcomes_recorded: one refresh per debounce window, however many outcomes."""
    from predictions.tasks import refresh_live_performance

    delay = settings.LIVE_PERFORMANCE_DEBOUNCE_SECONDS
    try:
        first = cache.add(PENDING_KEY, 1, timeout=max(delay, 1))
    except Exception:  # no cache: refresh every time rather than never
        logger.warning("cache unavailable; live performance refreshed without debounce", exc_info=True)
        first = True
    if not first:
        return
    try:
        refresh_live_performance.apply_async(countdown=delay)
    except Exception:
        # The outcomes are stored; the LIVE_PERFORMANCE_CRON schedule refreshes the figures too.
        logger.exception("Could not queue the live performance refresh")
