"""A/B tests with statistics: the arms' ROC AUC compared, and a worse challenger not promoted
silently (issue 12, point 4)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from accounts.models import AuditLogEntry
from accounts.services import SYSTEM
from churn_ml.tiers import risk_level
from customers.models import Outcome
from modelregistry.loader import ab_bucket
from modelregistry.models import ABTest, ModelStatus
from modelregistry.services import PromotionRefused, ab_test_start, ab_test_stop
from predictions.models import Prediction
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def running_test(register_model, django_capture_on_commit_callbacks):
    register_model(activate=True)
    challenger = register_model(activate=False)
    with django_capture_on_commit_callbacks(execute=True):
        test = ab_test_start(version=challenger.version, traffic_percent=50, actor=SYSTEM)
    return test


def _live_data(test: ABTest, *, n: int = 400, challenger_noise: float = 0.0, seed: int = 0) -> None:
    """Predictions of each customer's arm (by the sticky bucket), then an outcome 30 days later."""
    rng = np.random.default_rng(seed)
    when = timezone.now()
    predictions = []
    for i in range(n):
        customer = CustomerFactory(customer_id=f"AB-{i:04d}")
        truth = rng.beta(2, 4)
        churned = bool(rng.random() < truth)
        challenger = ab_bucket(customer.customer_id) < test.traffic_percent
        p = float(np.clip(truth + (rng.normal(0, challenger_noise) if challenger else 0.0), 0.001, 0.999))
        version = test.challenger if challenger else test.champion
        predictions.append(Prediction(customer_id=customer.customer_id, churn_probability=p,
                                      risk_level=risk_level(p).value, model_version=version, created_at=when))
        Outcome.objects.create(customer=customer, churned=churned, observed_at=when + timedelta(days=30),
                               source="tests")
    Prediction.objects.bulk_create(predictions)


def test_the_report_compares_the_arms_with_an_interval_a_p_value_and_the_needed_n(running_test, key_client):
    _live_data(running_test, challenger_noise=0.3)
    body = key_client.get("/api/v1/models/ab-test/").json()
    comparison = body["comparison"]
    assert comparison["metric"] == "roc_auc"
    arms = body["arms"]
    assert comparison["n"] == {"champion": arms["champion"]["outcomes"], "challenger": arms["challenger"]["outcomes"]}
    expected = arms["challenger"]["live_roc_auc"] - arms["champion"]["live_roc_auc"]
    assert comparison["difference"] == pytest.approx(expected, abs=1e-6)
    lo, hi = comparison["ci95"]
    assert lo < comparison["difference"] < hi
    assert comparison["p_value"] < 0.05
    assert comparison["needed_n"] > 100


def test_stop_with_promote_refuses_a_significantly_worse_challenger(running_test):
    _live_data(running_test, challenger_noise=0.3)
    with pytest.raises(PromotionRefused, match="significantly below"):
        ab_test_stop(actor=SYSTEM, promote=True)
    running_test.refresh_from_db()
    assert running_test.status == "running"
    running_test.challenger.refresh_from_db()
    assert running_test.challenger.status == ModelStatus.TESTING


def test_forcing_the_worse_challenger_needs_a_reason_and_is_audited(running_test, django_capture_on_commit_callbacks):
    _live_data(running_test, challenger_noise=0.3)
    with pytest.raises(PromotionRefused, match="needs a reason"):
        ab_test_stop(actor=SYSTEM, promote=True, force=True)
    with django_capture_on_commit_callbacks(execute=True):
        ab_test_stop(actor=SYSTEM, promote=True, force=True, reason="the champion's data feed is retired")
    running_test.challenger.refresh_from_db()
    assert running_test.challenger.status == ModelStatus.ACTIVE
    entry = AuditLogEntry.objects.get(action="model.ab_test_stop")
    assert entry.details["forced"] is True
    assert entry.details["comparison"]["significantly_worse"] is True
    assert entry.details["reason"] == "the champion's data feed is retired"


def test_an_equally_good_challenger_is_promoted(running_test, django_capture_on_commit_callbacks):
    _live_data(running_test, challenger_noise=0.0)
    with django_capture_on_commit_callbacks(execute=True):
        ab_test_stop(actor=SYSTEM, promote=True)
    running_test.challenger.refresh_from_db()
    assert running_test.challenger.status == ModelStatus.ACTIVE
