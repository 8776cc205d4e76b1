"""Prediction.objects.latest_per_customer(): the one home of "each customer's latest prediction"."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from modelregistry.models import ModelStatus
from predictions.models import Prediction
from tests.campaigns.factories import ModelVersionFactory, PredictionFactory

pytestmark = pytest.mark.django_db


def test_each_customer_counts_once_by_its_latest_prediction_and_a_tie_goes_to_the_later_row():
    now = timezone.now()
    PredictionFactory(customer_id="ANNA", churn_probability=0.9, created_at=now - timedelta(days=2))
    PredictionFactory(customer_id="ANNA", churn_probability=0.2, created_at=now)
    PredictionFactory(customer_id="BORIS", churn_probability=0.4, created_at=now)
    tie_winner = PredictionFactory(customer_id="BORIS", churn_probability=0.6, created_at=now)

    latest = {p.customer_id: p for p in Prediction.objects.latest_per_customer()}

    assert sorted(latest) == ["ANNA", "BORIS"]
    assert latest["ANNA"].churn_probability == 0.2
    assert latest["BORIS"].pk == tie_winner.pk


def test_latest_among_the_filtered_rows_only():
    now = timezone.now()
    version, other = ModelVersionFactory(), ModelVersionFactory(version="test-model-2", status=ModelStatus.TESTING)
    mine = PredictionFactory(customer_id="ANNA", created_at=now - timedelta(days=1), model_version=version)
    PredictionFactory(customer_id="ANNA", created_at=now, model_version=other)

    rows = list(Prediction.objects.filter(model_version=version).latest_per_customer())

    assert [p.pk for p in rows] == [mine.pk]
