"""Shadow scoring: a candidate scores requests off the response path (issue 12, point 5)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuditLogEntry
from accounts.services import api_key_create
from customers.models import Outcome
from modelregistry.models import ModelEvent, ShadowPrediction
from modelregistry.shadow import shadow_flush
from predictions.models import Prediction
from tests.factories import CustomerFactory, record

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(department):
    _, key = api_key_create(department=department, name="ops", scopes=["models:manage", "customers:read"])
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)
    return client


def test_a_shadow_scores_requests_without_changing_the_answers(register_model, weak_model, operator, key_client):
    active = register_model(activate=True)
    candidate = register_model(activate=False, trained=weak_model)
    started = operator.post(f"/api/v1/models/{candidate.version}/shadow/", {"share": 1.0}, format="json")
    assert started.status_code == 201, started.content
    assert started.json()["share"] == 1.0
    answers = []
    for i in range(25):
        customer = CustomerFactory(customer_id=f"SH-{i:03d}")
        body = key_client.post("/api/v1/predictions/", {"customer_id": customer.customer_id}, format="json").json()
        answers.append(body)
        Outcome.objects.create(customer=customer, churned=i % 3 == 0, observed_at=timezone.now() + timedelta(days=5),
                               source="tests")
    # The clients met the active model only, and only its predictions were stored.
    assert {a["model_version"] for a in answers} == {active.version}
    assert Prediction.objects.filter(model_version=candidate).count() == 0
    shadow_flush()
    assert ShadowPrediction.objects.filter(model_version=candidate).count() == 25
    row = ShadowPrediction.objects.get(customer_id="SH-000")
    assert row.active_probability == answers[0]["churn_probability"]
    assert row.churn_probability != row.active_probability

    report = key_client.get("/api/v1/models/shadow/").json()
    paired = report["paired"]
    assert paired["n"] == 25
    assert paired["shadow_mean_probability"] is not None
    assert 0 <= paired["risk_level_disagreement"] <= 1
    assert paired["outcomes"] == 25
    assert paired["comparison"]["method"] == "delong_paired"

    stopped = operator.post("/api/v1/models/shadow/stop/", {}, format="json")
    assert stopped.json()["status"] == "stopped"
    assert {e.action for e in AuditLogEntry.objects.filter(action__startswith="model.shadow")} == {
        "model.shadow_start", "model.shadow_stop"}
    assert ModelEvent.objects.filter(model_version=candidate, kind="shadow_started").exists()


def test_the_share_and_one_shadow_at_a_time(register_model, operator, key_client):
    register_model(activate=True)
    candidate = register_model(activate=False)
    assert operator.post(f"/api/v1/models/{candidate.version}/shadow/", {"share": 0}, format="json").status_code == 400
    assert operator.post(f"/api/v1/models/{candidate.version}/shadow/", {"share": 1.5},
                         format="json").status_code == 400
    assert operator.post(f"/api/v1/models/{candidate.version}/shadow/", {"share": 0.5},
                         format="json").status_code == 201
    assert operator.post(f"/api/v1/models/{candidate.version}/shadow/", {"share": 0.5},
                         format="json").status_code == 409
    assert key_client.post(f"/api/v1/models/{candidate.version}/shadow/", {"share": 0.5},
                           format="json").status_code == 403
    key_client.post("/api/v1/predictions/", record(customer_id="SX-1"), format="json")
