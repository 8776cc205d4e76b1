from __future__ import annotations

import pytest

from accounts.models import AuditLogEntry
from customers.models import Customer, Outcome
from tests.factories import CustomerFactory, record

pytestmark = pytest.mark.django_db


def test_upsert_creates_then_updates(key_client):
    first = key_client.post("/api/v1/customers/", record(), format="json")
    assert first.status_code == 201
    second = key_client.post("/api/v1/customers/", record(tenure_months=13, total_charges=1105.0), format="json")
    assert second.status_code == 200
    customer = Customer.objects.get(customer_id="C-1")
    assert customer.tenure_months == 13
    assert customer.source == "api"
    assert Customer.objects.count() == 1
    actions = list(AuditLogEntry.objects.filter(object_id="C-1").values_list("action", flat=True))
    assert sorted(actions) == ["customer.create", "customer.update"]


def test_get_one_customer_with_latest_prediction_and_outcome(key_client):
    CustomerFactory(customer_id="C-9")
    body = key_client.get("/api/v1/customers/C-9/").json()
    assert body["customer_id"] == "C-9"
    assert body["latest_prediction"] is None
    assert body["latest_outcome"] is None


def test_unknown_customer_is_404_json(key_client):
    response = key_client.get("/api/v1/customers/NOPE/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_list_filters_and_paginates(key_client):
    for i in range(5):
        CustomerFactory(customer_id=f"M-{i}", contract_type="Month-to-month")
    CustomerFactory(customer_id="Y-1", contract_type="Two year")
    page = key_client.get("/api/v1/customers/", {"page_size": 2}).json()
    assert page["count"] == 6
    assert len(page["results"]) == 2
    assert page["next"]
    two_year = key_client.get("/api/v1/customers/", {"contract_type": "Two year"}).json()
    assert [c["customer_id"] for c in two_year["results"]] == ["Y-1"]
    prefixed = key_client.get("/api/v1/customers/", {"customer_id_prefix": "M-"}).json()
    assert prefixed["count"] == 5


def test_bulk_keeps_valid_rows_and_reports_rejected(key_client):
    CustomerFactory(customer_id="OLD-1", tenure_months=3, total_charges=255.0)
    body = {
        "customers": [
            record(customer_id="NEW-1"),
            record(customer_id="BAD-1", tenure_months=-4),
            record(customer_id="OLD-1", tenure_months=4, total_charges=340.0),
            "not an object",
            record(customer_id="NEW-2", contract_type="Weekly"),
            record(customer_id="NEW-3"),
        ]
    }
    response = key_client.post("/api/v1/customers/bulk/", body, format="json")
    assert response.status_code == 200
    result = response.json()
    assert (result["created"], result["updated"]) == (2, 1)
    assert [(r["index"], r["customer_id"]) for r in result["rejected"]] == [(1, "BAD-1"), (3, None), (4, "NEW-2")]
    assert "tenure_months" in result["rejected"][0]["errors"]
    assert set(Customer.objects.values_list("customer_id", flat=True)) == {"NEW-1", "NEW-3", "OLD-1"}
    assert Customer.objects.get(customer_id="OLD-1").tenure_months == 4
    entry = AuditLogEntry.objects.get(action="customer.bulk_upsert")
    assert entry.details["rejected"] == 3


def test_bulk_same_customer_twice_uses_the_later_and_reports_the_earlier(key_client):
    body = {"customers": [record(customer_id="D-1", tenure_months=5), record(customer_id="D-1", tenure_months=6)]}
    result = key_client.post("/api/v1/customers/bulk/", body, format="json").json()
    assert result["created"] == 1
    assert result["rejected"][0]["index"] == 0
    assert "later" in result["rejected"][0]["errors"]["customer_id"][0]
    assert Customer.objects.get(customer_id="D-1").tenure_months == 6


def test_bulk_resend_is_unchanged(key_client):
    body = {"customers": [record(customer_id=f"R-{i}") for i in range(3)]}
    key_client.post("/api/v1/customers/bulk/", body, format="json")
    again = key_client.post("/api/v1/customers/bulk/", body, format="json").json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 3)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "customers"),
        ({"customers": []}, "customers"),
        ({"customers": {"a": 1}}, "customers"),
        ({"customers": [record()], "extra": 1}, "extra"),
    ],
)
def test_bulk_body_shape_errors(key_client, body, field):
    response = key_client.post("/api/v1/customers/bulk/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_bulk_over_10000_records_is_refused(key_client):
    response = key_client.post("/api/v1/customers/bulk/", {"customers": [{}] * 10_001}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["customers"] == ["At most 10000 records per request; got 10001."]


def test_bulk_of_10000_records_is_accepted(key_client):
    body = {"customers": [record(customer_id=f"B-{i}") for i in range(10_000)]}
    result = key_client.post("/api/v1/customers/bulk/", body, format="json").json()
    assert result["created"] == 10_000
    assert result["rejected"] == []


def test_record_outcome(key_client):
    CustomerFactory(customer_id="C-7")
    body = {"customer_id": "C-7", "churned": True, "observed_at": "2026-11-01T00:00:00Z"}
    response = key_client.post("/api/v1/outcomes/", body, format="json")
    assert response.status_code == 201
    assert response.json()["churned"] is True
    assert key_client.post("/api/v1/outcomes/", body, format="json").status_code == 200
    assert Outcome.objects.count() == 1
    detail = key_client.get("/api/v1/customers/C-7/").json()
    assert detail["latest_outcome"]["churned"] is True


def test_outcome_for_unknown_customer(key_client):
    body = {"customer_id": "GHOST", "churned": False, "observed_at": "2026-11-01T00:00:00Z"}
    response = key_client.post("/api/v1/outcomes/", body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"customer_id": ["No customer with this customer_id."]}


def test_customer_writes_and_outcomes_are_audited_with_their_department(key_client, user):
    """Issue 11 finding 9: customers are company-wide; each write and outcome names its department."""
    from rest_framework.test import APIClient

    assert key_client.post("/api/v1/customers/", record(customer_id="W-1"), format="json").status_code == 201
    assert key_client.post("/api/v1/customers/bulk/", {"customers": [record(customer_id="W-2")]},
                           format="json").status_code == 200
    jwt = APIClient()
    jwt.force_authenticate(user)
    outcome = {"customer_id": "W-1", "churned": True, "observed_at": "2026-11-01T00:00:00Z"}
    assert jwt.post("/api/v1/outcomes/", outcome, format="json").status_code == 201
    entries = AuditLogEntry.objects.filter(action__in=["customer.create", "customer.bulk_upsert", "outcome.record"])
    assert entries.count() == 3
    for entry in entries:
        assert entry.department.name == "retention", entry.action
        assert entry.details["department"] == "retention", entry.action


def test_another_department_reads_no_key_label_or_id_in_a_customers_outcome(key_client, api_key, other_department):
    """Issue 11 finding 8: key labels and internal ids appeared in cross-department answers."""
    from rest_framework.test import APIClient

    from accounts.services import api_key_create

    CustomerFactory(customer_id="X-1")
    body = {"customer_id": "X-1", "churned": True, "observed_at": "2026-11-01T00:00:00Z"}
    assert key_client.post("/api/v1/outcomes/", body, format="json").status_code == 201
    other = APIClient()
    other.credentials(HTTP_X_API_KEY=api_key_create(department=other_department, name="theirs")[1])
    seen = other.get("/api/v1/customers/X-1/").json()["latest_outcome"]
    assert seen["recorded_by"] == "api-key"
    assert "test-client" not in str(seen)
    assert f"#{api_key[0].pk}" not in str(seen)
    assert Outcome.objects.get().recorded_by == f"api-key:test-client#{api_key[0].pk}"  # kept for the audit
