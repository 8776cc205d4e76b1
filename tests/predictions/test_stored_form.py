"""How a prediction row is stored: factors as [feature, impact] pairs, JSON as text; read back whole.

A million-row job wrote 1,061 bytes a row once factors carried their fields and label (670 bytes
of them) and PostgreSQL parsed every JSON value into jsonb; the job took twice as long as before
the inputs were kept. The row now keeps the compact form and every reader expands it.
"""

from __future__ import annotations

import json

import pytest
from django.db import connection

from predictions.models import Prediction
from tests.factories import CustomerFactory, record

pytestmark = pytest.mark.django_db

URL = "/api/v1/predictions/"


def stored_text(prediction_id: str, column: str) -> str:
    """The column's value as the database holds it (by primary key: SQLite stores UUIDs without dashes)."""
    pk = Prediction.objects.get(prediction_id=prediction_id).pk
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM predictions_prediction WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_the_answer_of_a_post_is_what_a_get_returns(key_client, active_version):
    posted = key_client.post(URL, record(customer_id="SF-1", tenure_months=2), format="json")
    assert posted.status_code == 201
    got = key_client.get(f"{URL}{posted.json()['prediction_id']}/").json()
    assert {k: got[k] for k in posted.json()} == posted.json()
    assert all({"feature", "impact", "fields", "label"} == set(f) for f in got["top_factors"])


def test_batch_answers_are_what_gets_return(key_client, active_version):
    CustomerFactory(customer_id="SF-2")
    items = [record(customer_id="SF-3", contract_type="Two year"), {"customer_id": "SF-2"}]
    answered = key_client.post(f"{URL}batch/", {"customers": items}, format="json").json()["predictions"]
    for prediction in answered:
        got = key_client.get(f"{URL}{prediction['prediction_id']}/").json()
        assert {k: got[k] for k in prediction} == prediction


def test_the_row_keeps_factors_as_pairs_and_the_answer_expands_them(key_client, active_version):
    body = key_client.post(URL, record(customer_id="SF-4", tenure_months=1), format="json").json()
    stored = json.loads(stored_text(body["prediction_id"], "top_factors"))
    assert stored == [[f["feature"], f["impact"]] for f in body["top_factors"]]
    # the tenure group keeps its coupled fields when expanded
    tenure = next(f for f in body["top_factors"] if f["feature"] == "tenure_months")
    assert len(tenure["fields"]) > 1


@pytest.mark.postgres
def test_the_json_columns_are_text_so_a_copy_does_not_parse_them(key_client, active_version):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL column types")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'predictions_prediction'"
            " AND column_name IN ('top_factors', 'inputs', 'recommendations', 'offer')"
        )
        assert dict(cursor.fetchall()) == dict.fromkeys(("top_factors", "inputs", "recommendations", "offer"), "text")


def test_rows_stored_in_earlier_forms_still_read(key_client, active_version):
    CustomerFactory(customer_id="SF-5")
    old = Prediction.objects.create(
        customer_id="SF-5", churn_probability=0.7, risk_level="high", model_version=active_version,
        top_factors=[{"feature": "tenure_months", "impact": 0.9}], created_at="2026-01-01T00:00:00Z",
    )
    full = Prediction.objects.create(
        customer_id="SF-5", churn_probability=0.7, risk_level="high", model_version=active_version,
        top_factors=[{"feature": "contract_type", "impact": 0.5, "fields": ["contract_type"], "label": "Contract"}],
        created_at="2026-01-02T00:00:00Z",
    )
    first = key_client.get(f"{URL}{old.prediction_id}/").json()["top_factors"]
    # before factor groups a factor was one field's share: it keeps that one field
    assert first == [
        {"feature": "tenure_months", "impact": 0.9, "fields": ["tenure_months"], "label": first[0]["label"]}
    ]
    second = key_client.get(f"{URL}{full.prediction_id}/").json()["top_factors"]
    assert second == [{"feature": "contract_type", "impact": 0.5, "fields": ["contract_type"], "label": "Contract"}]
