"""Live performance per version: outcomes arrive through the outcome event and are joined to the
latest prediction before them (issue 12, points 1 and 2)."""

from __future__ import annotations

import time
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone
from sklearn.metrics import roc_auc_score

from churn_ml.tiers import risk_level
from customers.services import OutcomeInput, outcome_record, outcomes_record
from modelregistry.models import ModelLivePerformance
from predictions.models import Prediction


def _predict(version, ids, probabilities, when):
    Prediction.objects.bulk_create(
        Prediction(customer_id=cid, churn_probability=float(p), risk_level=risk_level(float(p)).value,
                   model_version=version, created_at=when)
        for cid, p in zip(ids, probabilities, strict=True)
    )


@pytest.mark.django_db
def test_outcomes_refresh_the_versions_realized_and_estimated_figures(
    active_version, store_customers, key_client, django_capture_on_commit_callbacks
):
    ids = store_customers(300, prefix="L")
    rng = np.random.default_rng(3)
    p = rng.beta(2, 5, len(ids))
    now = timezone.now()
    _predict(active_version, ids, p, now - timedelta(days=10))
    # An old prediction, beyond the 90-day horizon of its outcome, is not joined.
    _predict(active_version, ["L-000299"], [0.99], now - timedelta(days=200))
    y = rng.random(len(ids)) < p
    labelled = 200
    with django_capture_on_commit_callbacks(execute=True):
        outcomes_record(outcomes=[OutcomeInput(cid, bool(c), now, "tests")
                                  for cid, c in zip(ids[:labelled], y[:labelled], strict=True)], channel="file")
    row = ModelLivePerformance.objects.get(model_version=active_version, scope="all")
    realized = row.realized
    assert realized["n"] == labelled
    assert realized["positives"] == int(y[:labelled].sum())
    assert realized["roc_auc"] == pytest.approx(roc_auc_score(y[:labelled], p[:labelled]), abs=1e-6)
    lo, hi = realized["roc_auc_ci95"]
    assert lo < realized["roc_auc"] < hi
    assert row.estimated["n"] == len(ids) - labelled
    assert row.estimated["method"] == "cbpe"
    assert row.estimated["periods"][0]["n"] == len(ids) - labelled
    assert row.report["lift"][0]["top_share"] == 0.05

    body = key_client.get(f"/api/v1/models/{active_version.version}/").json()
    live = body["live"]
    assert live["horizon_days"] == 90
    assert live["realized"]["n"] == labelled
    assert live["estimated"]["n"] == len(ids) - labelled
    assert live["estimated"]["calibration_ece"] == active_version.metrics["ece"]
    assert set(live["realized"]) >= {"n", "positives", "roc_auc", "roc_auc_ci95", "brier", "ece", "accuracy"}


@pytest.mark.django_db
def test_a_version_without_outcomes_shows_empty_live_figures(active_version, key_client):
    live = key_client.get(f"/api/v1/models/{active_version.version}/").json()["live"]
    assert live["as_of"] is None
    assert live["realized"]["n"] == 0
    assert live["realized"]["roc_auc"] is None


@pytest.mark.slow
def test_a_real_worker_refreshes_the_figures_within_a_minute_of_an_outcome(
    celery_workers, register_model, store_customers
):
    version = register_model(activate=True)
    ids = store_customers(40, prefix="W")
    _predict(version, ids, np.linspace(0.05, 0.95, len(ids)), timezone.now() - timedelta(days=1))
    celery_workers.env_extra["LIVE_PERFORMANCE_DEBOUNCE_SECONDS"] = "1"
    celery_workers.start(1, queues="batch")
    started = time.monotonic()
    for i, cid in enumerate(ids):
        outcome_record(customer_id=cid, churned=i % 2 == 1, observed_at=timezone.now(), source="tests")
    deadline = started + 60
    row = None
    while time.monotonic() < deadline:
        row = ModelLivePerformance.objects.filter(model_version=version, scope="all").first()
        if row is not None and row.realized.get("n") == len(ids):
            break
        time.sleep(0.5)
    assert row is not None, "no live figures within a minute"
    assert row.realized["n"] == len(ids)
    assert time.monotonic() - started < 60
