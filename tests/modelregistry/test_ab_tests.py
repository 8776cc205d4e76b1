"""A/B tests: a challenger scores a fixed share of customers next to the active model."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuditLogEntry
from accounts.services import SYSTEM, api_key_create
from customers.models import Outcome
from modelregistry import loader
from modelregistry.models import ABTest, ModelStatus
from modelregistry.services import PromotionRefused, ab_test_report, ab_test_start, ab_test_stop
from predictions.models import Prediction
from tests.factories import CustomerFactory, record

pytestmark = pytest.mark.django_db


@pytest.fixture
def champion_and_challenger(register_model):
    champion = register_model(activate=True)
    challenger = register_model(activate=False)
    return champion, challenger


def _start(challenger, percent, capture):  # type: ignore[no-untyped-def]
    with capture(execute=True):
        return ab_test_start(version=challenger.version, traffic_percent=percent, actor=SYSTEM)


def test_customers_split_by_their_id_and_always_meet_the_same_version(
    champion_and_challenger, key_client, django_capture_on_commit_callbacks
):
    champion, challenger = champion_and_challenger
    _start(challenger, 30, django_capture_on_commit_callbacks)
    served = {}
    for i in range(60):
        cid = f"AB-{i}"
        body = key_client.post("/api/v1/predictions/", record(customer_id=cid), format="json").json()
        served[cid] = body["model_version"]
        expected = challenger.version if loader.ab_bucket(cid) < 30 else champion.version
        assert body["model_version"] == expected
    assert set(served.values()) == {champion.version, challenger.version}
    again = key_client.post("/api/v1/predictions/", record(customer_id="AB-7"), format="json").json()
    assert again["model_version"] == served["AB-7"]
    stored = dict(Prediction.objects.filter(customer_id="AB-7").values_list("customer_id", "model_version__version"))
    assert stored["AB-7"] == served["AB-7"]


def test_batch_requests_split_the_same_way(champion_and_challenger, key_client, django_capture_on_commit_callbacks):
    _, challenger = champion_and_challenger
    _start(challenger, 50, django_capture_on_commit_callbacks)
    items = [record(customer_id=f"BB-{i}") for i in range(40)]
    single = {
        item["customer_id"]: key_client.post("/api/v1/predictions/", item, format="json").json() for item in items
    }
    batch = key_client.post("/api/v1/predictions/batch/", {"customers": items}, format="json").json()["predictions"]
    assert [p["customer_id"] for p in batch] == [i["customer_id"] for i in items]
    for p in batch:
        assert p["model_version"] == single[p["customer_id"]]["model_version"]
        assert p["churn_probability"] == pytest.approx(single[p["customer_id"]]["churn_probability"], abs=1e-6)


def test_only_one_test_at_a_time_and_sane_shares(champion_and_challenger, register_model):
    champion, challenger = champion_and_challenger
    with pytest.raises(PromotionRefused, match="between 1 and 50"):
        ab_test_start(version=challenger.version, traffic_percent=80, actor=SYSTEM)
    with pytest.raises(PromotionRefused, match="is the active model"):
        ab_test_start(version=champion.version, traffic_percent=10, actor=SYSTEM)
    ab_test_start(version=challenger.version, traffic_percent=10, actor=SYSTEM)
    other = register_model(activate=False)
    with pytest.raises(PromotionRefused, match="already running"):
        ab_test_start(version=other.version, traffic_percent=10, actor=SYSTEM)
    assert AuditLogEntry.objects.filter(action="model.ab_test_start").count() == 1


def test_stop_and_promote_the_challenger(champion_and_challenger, django_capture_on_commit_callbacks):
    champion, challenger = champion_and_challenger
    _start(challenger, 20, django_capture_on_commit_callbacks)
    assert loader.active_model().challenger.version == challenger.version
    with django_capture_on_commit_callbacks(execute=True):
        test = ab_test_stop(actor=SYSTEM, promote=True)
    challenger.refresh_from_db()
    champion.refresh_from_db()
    assert test.status == "stopped"
    assert challenger.status == ModelStatus.ACTIVE
    assert champion.status == ModelStatus.DEPRECATED
    model = loader.active_model()
    assert (model.version, model.challenger) == (challenger.version, None)
    assert AuditLogEntry.objects.filter(action="model.ab_test_stop").exists()


def test_stopping_without_promotion_returns_everyone_to_the_active_model(
    champion_and_challenger, key_client, django_capture_on_commit_callbacks
):
    champion, challenger = champion_and_challenger
    _start(challenger, 50, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        ab_test_stop(actor=SYSTEM)
    versions = {
        key_client.post("/api/v1/predictions/", record(customer_id=f"S-{i}"), format="json").json()["model_version"]
        for i in range(20)
    }
    assert versions == {champion.version}


def test_report_compares_arms_on_outcomes_recorded_after_the_prediction(
    champion_and_challenger, key_client, django_capture_on_commit_callbacks
):
    _, challenger = champion_and_challenger
    test = _start(challenger, 50, django_capture_on_commit_callbacks)
    for i in range(30):
        customer = CustomerFactory(customer_id=f"R-{i}")
        key_client.post("/api/v1/predictions/", {"customer_id": customer.customer_id}, format="json")
        Outcome.objects.create(
            customer=customer, churned=i % 3 == 0, observed_at=timezone.now() + timedelta(days=30), source="test"
        )
    report = ab_test_report(test=test)
    arms = report["arms"]
    assert arms["champion"]["predictions"] + arms["challenger"]["predictions"] == 30
    assert arms["champion"]["outcomes"] == arms["champion"]["predictions"]
    assert arms["challenger"]["outcomes"] == arms["challenger"]["predictions"]
    assert arms["challenger"]["live_accuracy"] is not None


def test_ab_test_api(champion_and_challenger, department, django_capture_on_commit_callbacks):
    _, challenger = champion_and_challenger
    _, key = api_key_create(department=department, name="ops", scopes=["models:manage", "customers:read"])
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)
    assert client.get("/api/v1/models/ab-test/").status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        started = client.post(f"/api/v1/models/{challenger.version}/ab-test/", {"traffic_percent": 25}, format="json")
    assert started.status_code == 201
    assert started.json()["arms"]["challenger"]["version"] == challenger.version
    assert client.get("/api/v1/models/ab-test/").json()["status"] == "running"
    again = client.post(f"/api/v1/models/{challenger.version}/ab-test/", {"traffic_percent": 25}, format="json")
    assert again.status_code == 409
    bad = client.post(f"/api/v1/models/{challenger.version}/ab-test/", {"traffic_percent": 90}, format="json")
    assert bad.status_code == 400
    assert "traffic_percent" in bad.json()["errors"]
    stopped = client.post("/api/v1/models/ab-test/stop/", {"promote": False}, format="json")
    assert stopped.json()["status"] == "stopped"
    assert ABTest.objects.get().stopped_by.startswith("api-key:ops")


def test_admin_starts_and_stops_a_test(admin_client_with_user, champion_and_challenger):
    client, _ = admin_client_with_user
    _, challenger = champion_and_challenger
    response = client.post(
        "/admin/modelregistry/modelversion/",
        {"action": "start_ab_test", "_selected_action": [challenger.pk]},
        follow=True,
    )
    assert response.status_code == 200
    test = ABTest.objects.get()
    assert test.traffic_percent == 10
    page = client.get(f"/admin/modelregistry/abtest/{test.pk}/change/")
    assert page.status_code == 200
    assert b"live ROC AUC" in page.content
    client.post("/admin/modelregistry/abtest/", {"action": "stop_test", "_selected_action": [test.pk]}, follow=True)
    test.refresh_from_db()
    assert test.status == "stopped"


@pytest.fixture
def admin_client_with_user(client, admin_user):
    client.force_login(admin_user)
    return client, admin_user
