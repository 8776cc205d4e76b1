"""Issue 10, points 2 and 5 in batch jobs: every job prediction keeps the inputs it was scored
with and carries its tier's offer, on the COPY path as on the ORM one."""

from __future__ import annotations

import pytest

from churn_ml.schema import FIELD_ORDER
from customers.models import Customer
from predictions.models import BatchJobScope, BatchJobStatus, Prediction
from predictions.tier_actions import tier_actions
from tests.jobs.test_batch_jobs import run_job

pytestmark = pytest.mark.django_db


def test_job_predictions_keep_the_inputs_they_were_scored_with(
    active_version, store_customers, django_capture_on_commit_callbacks
):
    ids = store_customers(300, seed=3)
    Customer.objects.filter(customer_id=ids[0]).update(gender=None, age=44, income=52000.5, total_charges=None,
                                                        tenure_months=1)
    job = run_job(django_capture_on_commit_callbacks, scope=BatchJobScope.ALL, chunk_size=120)
    assert job.status == BatchJobStatus.SUCCEEDED
    stored = {row["customer_id"]: row for row in Customer.objects.values("customer_id", *FIELD_ORDER)}
    predictions = list(Prediction.objects.filter(batch_job=job))
    assert len(predictions) == 300
    for prediction in predictions:
        expected = {name: stored[prediction.customer_id][name] for name in FIELD_ORDER}
        assert prediction.scored_fields == expected, prediction.customer_id
    # a later change to the customer leaves the job's record of it alone
    Customer.objects.filter(customer_id=ids[1]).update(contract_type="Two year", tenure_months=70)
    kept = Prediction.objects.get(batch_job=job, customer_id=ids[1]).scored_fields
    assert (kept["contract_type"], kept["tenure_months"]) == (
        stored[ids[1]]["contract_type"], stored[ids[1]]["tenure_months"])


def test_job_predictions_carry_their_tiers_offer(active_version, store_customers, django_capture_on_commit_callbacks):
    store_customers(200, seed=4)
    job = run_job(django_capture_on_commit_callbacks, scope=BatchJobScope.ALL, chunk_size=100)
    offers = {level: tier.offer for level, tier in tier_actions().items()}
    levels = set()
    for level, offer in Prediction.objects.filter(batch_job=job).values_list("risk_level", "offer"):
        assert offer == offers[level]
        levels.add(level)
    assert "high" in levels  # the level with an offer by default was seen
