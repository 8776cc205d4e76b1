from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from churn_ml.schema import FIELD_ORDER
from churn_ml.scoring.factors import Factor
from modelregistry import loader
from predictions.models import Prediction, RiskTierAction
from predictions.tier_actions import forget_tier_actions
from tests.factories import CustomerFactory, record

pytestmark = pytest.mark.django_db

URL = "/api/v1/predictions/"
CONTRACT_KEYS = {
    "prediction_id",
    "customer_id",
    "churn_probability",
    "risk_level",
    "recommendations",
    "offer",
    "model_version",
    "top_factors",
    "created_at",
}
CONTRACT_FIELDS = {
    "gender",
    "senior_citizen",
    "partner",
    "dependents",
    "tenure_months",
    "phone_service",
    "multiple_lines",
    "internet_service",
    "online_security",
    "online_backup",
    "device_protection",
    "tech_support",
    "streaming_tv",
    "streaming_movies",
    "contract_type",
    "paperless_billing",
    "payment_method",
    "monthly_charges",
    "total_charges",
    "age",
    "income",
}


def test_score_a_full_record(key_client, active_version, api_key):
    response = key_client.post(URL, record(), format="json")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == CONTRACT_KEYS
    assert body["customer_id"] == "C-1"
    assert 0 < body["churn_probability"] < 1
    assert body["model_version"] == active_version.version
    assert body["risk_level"] in {"low", "medium", "high", "critical"}
    assert body["recommendations"]
    assert 1 <= len(body["top_factors"]) <= 5
    assert {f["feature"] for f in body["top_factors"]} <= CONTRACT_FIELDS
    for factor in body["top_factors"]:
        assert set(factor) == {"feature", "impact", "fields", "label"}
        assert factor["fields"][0] == factor["feature"]
        assert set(factor["fields"]) <= CONTRACT_FIELDS
        assert factor["label"]
    assert body["created_at"].endswith("Z")
    stored = Prediction.objects.get(prediction_id=body["prediction_id"])
    assert stored.requested_by_key_id == api_key[0].pk
    assert stored.scored_fields["tenure_months"] == 12
    assert stored.latency_ms > 0


def test_score_a_stored_customer_and_see_it_on_the_customer(key_client, active_version):
    CustomerFactory(customer_id="S-1", contract_type="Two year", tenure_months=60, total_charges=5100)
    body = key_client.post(URL, {"customer_id": "S-1"}, format="json").json()
    assert body["customer_id"] == "S-1"
    customer = key_client.get("/api/v1/customers/S-1/").json()
    assert customer["latest_prediction"]["prediction_id"] == body["prediction_id"]


def test_month_to_month_fibre_newcomer_scores_riskier_than_two_year_veteran(key_client, active_version):
    risky = key_client.post(
        URL, record(customer_id="R", tenure_months=1, total_charges=95, monthly_charges=95), format="json"
    ).json()
    loyal = key_client.post(
        URL,
        record(
            customer_id="L",
            tenure_months=70,
            contract_type="Two year",
            internet_service="DSL",
            total_charges=4200,
            monthly_charges=60,
            payment_method="Credit card",
        ),
        format="json",
    ).json()
    assert risky["churn_probability"] > 0.6 > 0.2 > loyal["churn_probability"]


def test_unknown_stored_customer_is_a_field_error(key_client, active_version):
    response = key_client.post(URL, {"customer_id": "GHOST"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"customer_id": ["No stored customer with this customer_id."]}


def test_invalid_record_is_400_with_field_errors(key_client, active_version):
    response = key_client.post(URL, record(tenure_months=-3, contract_type="Weekly"), format="json")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"tenure_months", "contract_type"}
    assert Prediction.objects.count() == 0


def test_no_active_model_is_503(key_client):
    response = key_client.post(URL, record(), format="json")
    assert response.status_code == 503
    assert response.json()["code"] == "model_unavailable"


def test_scoring_needs_the_scope(department, active_version):
    from rest_framework.test import APIClient

    from accounts.services import api_key_create

    _, reader = api_key_create(department=department, name="r", scopes=["customers:read"])
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=reader)
    assert client.post(URL, record(), format="json").status_code == 403


@pytest.mark.parametrize(
    ("p", "level"),
    [
        (0.0, "low"),
        (0.2999, "low"),
        (0.30, "medium"),
        (0.5999, "medium"),
        (0.60, "high"),
        (0.7999, "high"),
        (0.80, "critical"),
        (1.0, "critical"),
    ],
)
def test_risk_level_boundaries_and_recommendations(key_client, active_version, monkeypatch, p, level):
    scorer = loader.active_model().scorer
    monkeypatch.setattr(type(scorer), "score_one", lambda self, rec, k=5: (p, [Factor("contract_type", 0.5)]))
    body = key_client.post(URL, record(), format="json").json()
    assert body["risk_level"] == level
    assert body["recommendations"] == RiskTierAction.objects.get(risk_level=level).recommendations


@pytest.fixture
def tiers_forgotten():
    """The tier cache emptied before and after: the edit below is rolled back with the test, and a
    cache still holding it would serve it to the next test for up to two seconds."""
    forget_tier_actions()
    yield
    forget_tier_actions()


def test_operators_edit_recommendations_without_a_deploy(key_client, active_version, monkeypatch, tiers_forgotten):
    scorer = loader.active_model().scorer
    monkeypatch.setattr(type(scorer), "score_one", lambda self, rec, k=5: (0.7, [Factor("contract_type", 0.5)]))
    RiskTierAction.objects.filter(risk_level="high").update(
        recommendations=["Offer 20% off for 6 months."], offer_discount_percent=20, offer_months=6
    )
    forget_tier_actions()  # as an operator's save does once it commits
    body = key_client.post(URL, record(), format="json").json()
    assert body["recommendations"] == ["Offer 20% off for 6 months."]
    assert body["offer"] == {"discount_percent": 20.0, "months": 6}


def test_batch_keeps_input_order_and_reports_per_item_errors(key_client, active_version):
    CustomerFactory(customer_id="S-9")
    items = [
        record(customer_id="B-0"),
        record(customer_id="B-1", tenure_months=700),
        {"customer_id": "S-9"},
        {"customer_id": "MISSING"},
        42,
        record(customer_id="B-5", contract_type="Two year"),
    ]
    response = key_client.post(f"{URL}batch/", {"customers": items}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert [p["customer_id"] for p in body["predictions"]] == ["B-0", "S-9", "B-5"]
    assert all(set(p) == CONTRACT_KEYS for p in body["predictions"])
    assert [(e["index"], e["customer_id"]) for e in body["errors"]] == [(1, "B-1"), (3, "MISSING"), (4, None)]
    assert "tenure_months" in body["errors"][0]["errors"]
    assert Prediction.objects.count() == 3


def test_batch_equals_single_scoring(key_client, active_version):
    items = [record(customer_id=f"E-{i}", tenure_months=i, total_charges=85.0 * i) for i in range(2, 12)]
    batch = key_client.post(f"{URL}batch/", {"customers": items}, format="json").json()["predictions"]
    for item, scored in zip(items, batch, strict=True):
        single = key_client.post(URL, item, format="json").json()
        assert single["churn_probability"] == pytest.approx(scored["churn_probability"], abs=1e-6)
        assert single["risk_level"] == scored["risk_level"]
        assert single["top_factors"] == scored["top_factors"]


def test_batch_limit(key_client, active_version):
    response = key_client.post(f"{URL}batch/", {"customers": [record()] * 1001}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["customers"] == ["At most 1000 records per request; got 1001."]


def test_history_filters(key_client, active_version, monkeypatch):
    scorer = loader.active_model().scorer
    levels = iter([0.1, 0.9, 0.5])
    monkeypatch.setattr(type(scorer), "score_one", lambda self, rec, k=5: (next(levels), []))
    for cid in ["H-1", "H-1", "H-2"]:
        key_client.post(URL, record(customer_id=cid), format="json")
    Prediction.objects.filter(customer_id="H-2").update(created_at=timezone.now() - timedelta(days=3))
    assert key_client.get(URL, {"customer_id": "H-1"}).json()["count"] == 2
    assert [p["risk_level"] for p in key_client.get(URL, {"risk_level": "critical"}).json()["results"]] == ["critical"]
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert {p["customer_id"] for p in key_client.get(URL, {"since": since}).json()["results"]} == {"H-1"}
    newest_first = key_client.get(URL).json()["results"]
    assert [p["customer_id"] for p in newest_first] == ["H-1", "H-1", "H-2"]
    one = newest_first[0]
    assert key_client.get(f"{URL}{one['prediction_id']}/").json() == one
    assert one["inputs"] == {"customer_id": "H-1", **{name: record().get(name) for name in FIELD_ORDER}}


def test_readyz_is_ready_with_an_active_model(client, active_version):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["model"] == "ok"
