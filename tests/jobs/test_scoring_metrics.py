"""Every scored customer is counted, with its source (issue 12, point 9): the nightly batch jobs
reach churn_predictions_total, the high-risk counter and the probability histogram."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from customers.services import OutcomeInput, outcomes_record
from tests.factories import record
from tests.ops.metrics_text import samples, value

pytestmark = pytest.mark.django_db


def scrape() -> dict:
    return samples(Client().get("/metrics").content.decode())


def test_batch_job_predictions_are_counted_with_source_job(active_version, store_customers,
                                                           django_capture_on_commit_callbacks):
    from predictions.batch_jobs.create import batch_job_create

    store_customers(300, prefix="M")
    before = scrape()
    with django_capture_on_commit_callbacks(execute=True):
        batch_job_create(scope="all")
    after = scrape()
    version = active_version.version
    name = "churn_predictions_total"
    assert value(after, name, source="job", model_version=version) - value(
        before, name, source="job", model_version=version
    ) == 300
    hist = "churn_prediction_probability_count"
    assert value(after, hist, source="job") - value(before, hist, source="job") == 300
    high = "churn_high_risk_customers_identified_total"
    assert value(after, high, source="job") > value(before, high, source="job")
    from predictions.models import Prediction

    stored_high = Prediction.objects.filter(source="job", risk_level__in=["high", "critical"]).count()
    assert value(after, high, source="job") - value(before, high, source="job") == stored_high


def test_api_single_and_batch_requests_are_counted_apart(active_version, key_client):
    before = scrape()
    key_client.post("/api/v1/predictions/", record(customer_id="MS-1"), format="json")
    key_client.post("/api/v1/predictions/batch/", {"customers": [record(customer_id=f"MB-{i}") for i in range(3)]},
                    format="json")
    after = scrape()
    name = "churn_predictions_total"
    assert value(after, name, source="api") - value(before, name, source="api") == 1
    assert value(after, name, source="batch") - value(before, name, source="batch") == 3


def test_recorded_outcomes_are_counted_for_the_observed_churn_alert(store_customers,
                                                                    django_capture_on_commit_callbacks):
    ids = store_customers(10, prefix="O")
    before = scrape()
    with django_capture_on_commit_callbacks(execute=True):
        observed = timezone.now()
        outcomes_record(outcomes=[OutcomeInput(cid, i < 4, observed, "tests") for i, cid in enumerate(ids)],
                        channel="file")
    after = scrape()
    name = "churn_outcomes_recorded_total"
    assert value(after, name, churned="true") - value(before, name, churned="true") == 4
    assert value(after, name, churned="false") - value(before, name, churned="false") == 6
