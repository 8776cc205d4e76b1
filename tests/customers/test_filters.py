"""One customer filter vocabulary (customers.filters) for the customer list, batch jobs and campaigns."""

from __future__ import annotations

import pytest

from campaigns.services.common import CampaignError
from campaigns.services.spec import clean_target_filters
from customers.filters import customer_filter_q
from customers.models import Customer
from predictions.batch_jobs.common import BatchJobInputError
from predictions.batch_jobs.create import customer_filter
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def customers():  # type: ignore[no-untyped-def]
    CustomerFactory(customer_id="NEW-CHEAP", tenure_months=2, monthly_charges=30.0)
    CustomerFactory(customer_id="NEW-DEAR", tenure_months=3, monthly_charges=95.0)
    CustomerFactory(customer_id="OLD-CHEAP", tenure_months=40, monthly_charges=25.0, contract_type="Two year")


def _listed(key_client, query: str) -> list[str]:  # type: ignore[no-untyped-def]
    response = key_client.get(f"/api/v1/customers/?{query}")
    assert response.status_code == 200, response.json()
    return sorted(c["customer_id"] for c in response.json()["results"])


def test_the_customer_list_takes_the_vocabulary_and_the_deprecated_spelling(key_client, customers):
    assert _listed(key_client, "max_tenure_months=6&max_monthly_charges=50") == ["NEW-CHEAP"]
    assert _listed(key_client, "min_tenure_months=3&min_monthly_charges=90") == ["NEW-DEAR"]
    deprecated = _listed(key_client, "max_tenure=6")
    assert deprecated == _listed(key_client, "max_tenure_months=6") == ["NEW-CHEAP", "NEW-DEAR"]


def test_a_batch_job_filter_takes_the_same_names(customers):
    assert sorted(customer_filter({"max_monthly_charges": 50}).values_list("customer_id", flat=True)) == [
        "NEW-CHEAP", "OLD-CHEAP",
    ]
    assert list(customer_filter({"min_tenure": 24}).values_list("customer_id", flat=True)) == ["OLD-CHEAP"]
    with pytest.raises(BatchJobInputError) as refused:
        customer_filter({"tenure": 3})
    assert "filter.tenure" in refused.value.errors


def test_a_campaign_rule_stores_the_new_spelling_and_matches_the_same_customers(customers):
    rule = clean_target_filters({"max_tenure": 6, "max_monthly_charges": 50, "contract_type": "month-to-month"})

    assert rule == {"max_tenure_months": 6, "max_monthly_charges": 50, "contract_type": ["Month-to-month"]}
    assert list(Customer.objects.filter(customer_filter_q(rule)).values_list("customer_id", flat=True)) == ["NEW-CHEAP"]
    with pytest.raises(CampaignError) as refused:
        clean_target_filters({"min_tenure_months": 10, "max_tenure": 5, "colour": "red"})
    assert sorted(refused.value.errors["target_filters"]) == [
        "colour: unknown filter.", "min_tenure_months is above max_tenure_months."
    ]
