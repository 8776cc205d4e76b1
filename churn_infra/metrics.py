"""The platform's own Prometheus metrics, defined once; apps import and update them.

Under gunicorn with several workers, PROMETHEUS_MULTIPROC_DIR makes every worker write its values
to files that /metrics sums (gunicorn.conf.py sets it up); gauges declare how they combine across
processes. Values that are cheaper to read than to keep up to date (Celery queue depth, the
registry's active model, container CPU) are computed when Prometheus scrapes, by
churn_platform.collectors, and have no object here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.08, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
PROBABILITY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)

PREDICTIONS = Counter(
    "churn_predictions_total", "Predictions made", ["model_version", "risk_level", "source"]
)
PREDICTION_LATENCY = Histogram(
    "churn_prediction_latency_seconds", "Time to score (validation to stored row)", ["endpoint"],
    buckets=LATENCY_BUCKETS,
)
PREDICTION_PROBABILITY = Histogram(
    "churn_prediction_probability", "Churn probabilities returned", ["model_version", "source"],
    buckets=PROBABILITY_BUCKETS,
)
HIGH_RISK_IDENTIFIED = Counter(
    "churn_high_risk_customers_identified_total", "Customers newly scored high or critical", ["risk_level", "source"]
)
OUTCOMES_RECORDED = Counter(
    "churn_outcomes_recorded_total", "Outcomes recorded (what really happened)", ["churned", "source"]
)

BATCH_JOB_ROWS = Counter("churn_batch_job_rows_total", "Rows handled by batch scoring jobs", ["outcome"])
BATCH_JOB_DURATION = Histogram(
    "churn_batch_job_duration_seconds", "Wall time of finished batch scoring jobs",
    buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
BATCH_CHUNK_DURATION = Histogram(
    "churn_batch_chunk_duration_seconds", "Wall time of one batch scoring chunk",
    buckets=(*LATENCY_BUCKETS[4:], 10, 30, 60),
)

INGESTION_ROWS = Counter("churn_ingestion_rows_total", "Rows ingested by outcome", ["source_kind", "outcome"])
INGESTION_RUNS = Counter("churn_ingestion_runs_total", "Ingestion runs finished by status", ["source_kind", "status"])

ACTIVE_MODEL = Gauge(
    "churn_active_model_info", "1 for the model version this process serves", ["version", "algorithm"],
    multiprocess_mode="liveall",
)
MODEL_LIVE_ACCURACY = Gauge(
    "churn_model_live_accuracy", "Accuracy of the active model on recorded outcomes", ["model_version"],
    multiprocess_mode="mostrecent",
)
MODEL_LIVE_AUC = Gauge(
    "churn_model_live_auc", "ROC AUC of the active model on recorded outcomes", ["model_version"],
    multiprocess_mode="mostrecent",
)
MODEL_MEAN_CONFIDENCE = Gauge(
    "churn_model_mean_confidence", "Mean confidence max(p, 1-p) of recent predictions", ["model_version"],
    multiprocess_mode="mostrecent",
)
DRIFT_PSI = Gauge(
    "churn_drift_psi", "Population stability index of recent inputs vs the training reference", ["feature"],
    multiprocess_mode="mostrecent",
)
CAMPAIGN_UPLIFT = Gauge(
    "churn_campaign_retention_uplift", "Treatment minus control retention rate", ["campaign"],
    multiprocess_mode="mostrecent",
)

API_REQUESTS = Counter(
    "churn_api_requests_total", "API requests by calling department and key", ["department", "api_key", "status"]
)
AUTH_FAILURES = Counter("churn_auth_failures_total", "Rejected authentication attempts", ["reason"])
# Login abuse (issue 11): lock-outs by sign-in path, and requests refused for failed API keys.
LOGIN_LOCKOUTS = Counter(
    "churn_login_lockouts_total", "Sign-ins refused by the lock-out policy (admin, staff, token)", ["via"]
)
API_KEY_FAILURE_THROTTLED = Counter(
    "churn_api_key_failures_throttled_total", "Requests refused 429 after too many failed API keys from an address"
)

# churn_celery_queue_depth{queue} is computed at scrape time from the broker (churn_platform.collectors).
CELERY_TASKS = Counter("churn_celery_tasks_total", "Celery tasks finished by outcome", ["task", "outcome"])
CELERY_TASK_DURATION = Histogram(
    "churn_celery_task_duration_seconds", "Run time of Celery tasks", ["task"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600),
)

METRICS_COLLECTOR_ERRORS = Counter(
    "churn_metrics_collector_errors_total", "Scrape-time collectors that could not read their source", ["collector"]
)

# --- outages (churn_infra.outages) ---------------------------------------------------------
CACHE_ERRORS = Counter(
    "churn_cache_errors_total", "Cache calls that failed, or were refused while Redis was down", ["operation"]
)
RATE_LIMIT_DEGRADED = Counter(
    "churn_rate_limit_degraded_total", "Requests let through unthrottled because the rate-limit counter was unavailable"
)
SERVICE_UNAVAILABLE = Counter(
    "churn_service_unavailable_total", "Requests answered 503 by reason", ["reason"]
)
REQUESTS_SHED = Counter(
    "churn_requests_shed_total", "Requests answered 503 unworked because they waited in the queue too long"
)

# The ``source`` label of the scoring metrics: where the score was made. API batch requests are
# stored as "api_batch" but counted as "batch"; "shadow" scores never reach customers and are
# kept apart (the business rules and alerts exclude them).
SOURCE_LABELS = {"api": "api", "api_batch": "batch", "job": "job", "rescore": "rescore", "shadow": "shadow"}


def count_scored(*, model_version: str, levels: Any, probabilities: Any, source: str) -> None:
    """Count scored customers once, for every scoring path: predictions by level, high-risk
    customers and the probability histogram, all labelled with ``source``.

    Takes whole arrays: a million-row batch job costs a few numpy calls, not a million
    observe() calls (the histogram's buckets are filled from one bincount; prometheus_client has
    no bulk observe, so this uses its documented bucket layout: the first upper bound >= value).
    """
    label = SOURCE_LABELS.get(source, source)
    levels = np.asarray(levels)
    p = np.asarray(probabilities, dtype=np.float64)
    if len(p) == 0:
        return
    names, counts = np.unique(levels, return_counts=True)
    for level, count in zip(names.tolist(), counts.tolist(), strict=True):
        PREDICTIONS.labels(model_version, level, label).inc(count)
        if level in ("high", "critical") and label != "shadow":
            HIGH_RISK_IDENTIFIED.labels(level, label).inc(count)
    histogram = PREDICTION_PROBABILITY.labels(model_version, label)
    bounds = np.asarray(histogram._upper_bounds, dtype=np.float64)
    index = np.searchsorted(bounds, p, side="left")
    for i, count in enumerate(np.bincount(index, minlength=len(bounds)).tolist()):
        if count:
            histogram._buckets[i].inc(count)
    histogram._sum.inc(float(p.sum()))
