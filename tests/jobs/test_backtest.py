"""A version trained on stored outcomes is backtested on older and newer outcomes (issue 12, point 6)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.services import SYSTEM
from customers.models import Outcome
from modelregistry.services import model_train, training_data_from_store

pytestmark = pytest.mark.django_db


def test_a_store_trained_version_is_backtested_on_older_and_newer_outcomes(store_customers):
    store_customers(2500, prefix="T", labels=True)
    now = timezone.now()
    pks = list(Outcome.objects.order_by("pk").values_list("pk", flat=True))
    for week in range(10):  # labels observed over ten weeks
        Outcome.objects.filter(pk__in=pks[week::10]).update(observed_at=now - timedelta(days=7 * week))
    version = model_train(data=training_data_from_store(), actor=SYSTEM, algorithm="logistic")
    backtest = version.report["backtest"]
    assert backtest["result"]["n_test"] == 500
    assert backtest["result"]["n_train"] == 2000
    assert backtest["result"]["roc_auc"] > 0.6
    assert "older 80%" in backtest["reason"]
