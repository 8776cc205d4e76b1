"""Issue 10, points 2 and 3: a prediction keeps what it was made from; scoring a full record
upserts the customer, and ?store=false is a what-if that stores nothing."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client

from accounts.models import AuditLogEntry
from customers.models import Customer
from predictions import writes
from predictions.models import Prediction, PredictionSource
from predictions.tasks import rescore_customers
from tests.factories import CustomerFactory, record

pytestmark = pytest.mark.django_db

URL = "/api/v1/predictions/"


def detail(client, prediction_id):  # type: ignore[no-untyped-def]
    response = client.get(f"{URL}{prediction_id}/")
    assert response.status_code == 200
    return response.json()


# --- point 2: the inputs ------------------------------------------------------------------------


def test_a_prediction_of_a_stored_customer_keeps_the_values_it_was_scored_with(key_client, active_version):
    customer = CustomerFactory(customer_id="S-1", contract_type="Two year", tenure_months=60)
    body = key_client.post(URL, {"customer_id": "S-1"}, format="json").json()
    # the customer changes afterwards
    Customer.objects.filter(pk=customer.pk).update(contract_type="Month-to-month", tenure_months=2)
    inputs = detail(key_client, body["prediction_id"])["inputs"]
    assert inputs["customer_id"] == "S-1"
    assert (inputs["contract_type"], inputs["tenure_months"]) == ("Two year", 60)
    assert (inputs["monthly_charges"], inputs["total_charges"]) == (85.0, 5100.0)


def test_batch_endpoint_predictions_keep_their_inputs(key_client, active_version):
    CustomerFactory(customer_id="S-2", contract_type="One year")
    items = [record(customer_id="B-1", tenure_months=7, total_charges=600.0), {"customer_id": "S-2"}]
    scored = key_client.post(f"{URL}batch/", {"customers": items}, format="json").json()["predictions"]
    first, second = (detail(key_client, p["prediction_id"])["inputs"] for p in scored)
    assert (first["customer_id"], first["tenure_months"], first["total_charges"]) == ("B-1", 7, 600.0)
    assert second["contract_type"] == "One year"
    # the batch writes the same snapshot the single path does
    single = key_client.post(URL, record(customer_id="B-1", tenure_months=7, total_charges=600.0), format="json")
    assert detail(key_client, single.json()["prediction_id"])["inputs"] == first


def test_a_rescore_keeps_its_inputs(active_version):
    CustomerFactory(customer_id="R-1", internet_service="DSL", tenure_months=30)
    assert rescore_customers(customer_ids=["R-1"]) == 1
    prediction = Prediction.objects.get(customer_id="R-1", source=PredictionSource.RESCORE)
    assert prediction.scored_fields["internet_service"] == "DSL"
    assert prediction.scored_fields["tenure_months"] == 30


def test_history_shows_the_values_each_prediction_was_made_from(key_client, active_version, staff_user):
    CustomerFactory(customer_id="H-1", contract_type="Two year", tenure_months=40)
    key_client.post(URL, {"customer_id": "H-1"}, format="json")
    Customer.objects.filter(customer_id="H-1").update(contract_type="Month-to-month", tenure_months=41)
    key_client.post(URL, {"customer_id": "H-1"}, format="json")
    history = key_client.get(URL, {"customer_id": "H-1"}).json()["results"]
    assert [p["inputs"]["contract_type"] for p in history] == ["Month-to-month", "Two year"]
    # the staff page's prediction history shows the contract each prediction was made with
    client = Client()
    client.force_login(staff_user)
    page = client.get("/staff/customers/H-1/").content.decode()
    history_html = page.split("Prediction history", 1)[1].split("Campaign history", 1)[0]
    assert "Two year · 40 months" in history_html
    assert "Month-to-month · 41 months" in history_html


# --- point 3: a full record upserts its customer ------------------------------------------------


def test_scoring_a_full_record_stores_the_customer_so_outcomes_can_follow(key_client, active_version):
    response = key_client.post(URL, record(customer_id="CRM-1", total_charges=5000.0), format="json")
    assert response.status_code == 201
    customer = key_client.get("/api/v1/customers/CRM-1/")
    assert customer.status_code == 200
    body = customer.json()
    assert body["latest_prediction"]["prediction_id"] == response.json()["prediction_id"]
    stored = Customer.objects.get(customer_id="CRM-1")
    assert stored.source == "api:prediction"
    # the same quality report as POST customers/ would give (total far from tenure x monthly)
    via_customers = key_client.post("/api/v1/customers/", record(customer_id="CRM-2", total_charges=5000.0),
                                    format="json")
    assert via_customers.status_code == 201
    twin = Customer.objects.get(customer_id="CRM-2")
    assert stored.quality_warnings
    assert stored.quality_warnings == twin.quality_warnings
    assert stored.quality_completeness == twin.quality_completeness
    assert AuditLogEntry.objects.filter(action="customer.create", object_id="CRM-1").exists()
    outcome = key_client.post(
        "/api/v1/outcomes/", {"customer_id": "CRM-1", "churned": True, "observed_at": "2026-11-30T00:00:00Z"},
        format="json",
    )
    assert outcome.status_code == 201


def test_a_second_full_record_updates_the_customer(key_client, active_version):
    key_client.post(URL, record(customer_id="CRM-3"), format="json")
    key_client.post(URL, record(customer_id="CRM-3", contract_type="One year"), format="json")
    assert Customer.objects.get(customer_id="CRM-3").contract_type == "One year"
    assert Prediction.objects.filter(customer_id="CRM-3").count() == 2


def test_rescoring_the_same_record_rewrites_nothing_and_a_change_is_audited(key_client, active_version):
    key_client.post(URL, record(customer_id="CRM-6"), format="json")
    first = Customer.objects.get(customer_id="CRM-6")
    key_client.post(URL, record(customer_id="CRM-6"), format="json")
    again = Customer.objects.get(customer_id="CRM-6")
    assert again.updated_at == first.updated_at
    assert AuditLogEntry.objects.filter(object_id="CRM-6").values_list("action", flat=True).count() == 1
    key_client.post(URL, record(customer_id="CRM-6", tenure_months=40, total_charges=2800.0), format="json")
    changed = Customer.objects.get(customer_id="CRM-6")
    assert (changed.tenure_months, changed.updated_at > first.updated_at) == (40, True)
    assert list(AuditLogEntry.objects.filter(object_id="CRM-6").order_by("pk").values_list("action", flat=True)) == [
        "customer.create", "customer.update"
    ]
    assert Prediction.objects.filter(customer_id="CRM-6").count() == 3


@pytest.mark.django_db(transaction=True)  # autocommit, as served: the failed statement is its own transaction
def test_the_customer_and_the_prediction_commit_together(key_client, active_version, monkeypatch):
    # The prediction's row is refused by the database itself (a probability that is no number),
    # after the customer's upsert ran: the customer must go with it, whichever way it was written.
    insert_statement, insert_prediction = writes.insert_statement, writes.insert_prediction

    def refused_statement(row, constants):  # type: ignore[no-untyped-def]
        return insert_statement({**row, "churn_probability": "not a number"}, constants)

    def refused_orm(row, constants, **kwargs):  # type: ignore[no-untyped-def]
        return insert_prediction({**row, "churn_probability": "not a number"}, constants, **kwargs)

    monkeypatch.setattr(writes, "insert_statement", refused_statement)
    if connection.vendor != "postgresql":
        monkeypatch.setattr(writes, "insert_prediction", refused_orm)
    assert key_client.post(URL, record(customer_id="CRM-4"), format="json").status_code == 500
    assert not Customer.objects.filter(customer_id="CRM-4").exists()
    assert not AuditLogEntry.objects.filter(object_id="CRM-4").exists()


def test_a_reference_does_not_rewrite_the_stored_customer(key_client, active_version):
    CustomerFactory(customer_id="S-5", source="crm")
    key_client.post(URL, {"customer_id": "S-5"}, format="json")
    assert Customer.objects.get(customer_id="S-5").source == "crm"


def test_store_false_is_a_what_if_that_stores_nothing(key_client, active_version):
    response = key_client.post(f"{URL}?store=false", record(customer_id="W-1"), format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["prediction_id"] is None
    assert 0 < body["churn_probability"] < 1
    assert body["top_factors"]
    assert not Customer.objects.exists()
    assert not Prediction.objects.exists()
    # the same record stored scores the same
    stored = key_client.post(URL, record(customer_id="W-1"), format="json").json()
    assert stored["churn_probability"] == body["churn_probability"]


def test_store_must_be_a_boolean(key_client, active_version):
    response = key_client.post(f"{URL}?store=maybe", record(), format="json")
    assert response.status_code == 400
    assert "store" in response.json()["errors"]


def test_the_batch_endpoint_upserts_full_records_and_stores_nothing_with_store_false(key_client, active_version):
    CustomerFactory(customer_id="S-7", source="crm")
    items = [record(customer_id="BB-1"), record(customer_id="BB-1", tenure_months=30, total_charges=2550.0),
             {"customer_id": "S-7"}, record(customer_id="BB-2", tenure_months=-1)]
    what_if = key_client.post(f"{URL}batch/?store=false", {"customers": items}, format="json")
    assert what_if.status_code == 200
    assert [p["prediction_id"] for p in what_if.json()["predictions"]] == [None, None, None]
    assert [e["index"] for e in what_if.json()["errors"]] == [3]
    assert not Prediction.objects.exists()
    assert list(Customer.objects.values_list("customer_id", flat=True)) == ["S-7"]

    stored = key_client.post(f"{URL}batch/", {"customers": items}, format="json")
    assert stored.status_code == 200
    assert Prediction.objects.count() == 3
    customers = {c.customer_id: c for c in Customer.objects.all()}
    assert set(customers) == {"S-7", "BB-1"}
    assert customers["BB-1"].tenure_months == 30  # the last record of a customer_id wins
    assert customers["BB-1"].source == "api:prediction"
    assert customers["S-7"].source == "crm"  # a reference is not a write
    assert key_client.get("/api/v1/customers/BB-1/").status_code == 200


def test_the_schema_documents_store_and_both_statuses(api_client):
    schema = api_client.get("/api/schema/", {"format": "json"}).json()
    single = schema["paths"]["/api/v1/predictions/"]["post"]
    assert {"200", "201"} <= set(single["responses"])
    assert any(p["name"] == "store" and p["in"] == "query" for p in single["parameters"])
    batch = schema["paths"]["/api/v1/predictions/batch/"]["post"]
    assert any(p["name"] == "store" for p in batch["parameters"])
    history = schema["components"]["schemas"]["PredictionHistory"]["properties"]
    assert {"inputs", "offer"} <= set(history)
