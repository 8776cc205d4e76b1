"""One prediction writer: every way of scoring stores the same columns the same way, and reads back as answered.

A single call, a batch call, a re-score and a batch job (stored customers or an uploaded file)
all go through predictions.writes. What was answered (or written to the job's results) is what
GET predictions/{id}/ shows; the rows of one customer scored by each path hold the same cells;
and a column added to the model is filled with its default by every path.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, models

from churn_ml.schema import RECORD_FIELDS
from customers.models import Customer
from predictions import writes
from predictions.models import Prediction, PredictionSource, RiskTierAction
from predictions.services import predictions_score_stored
from predictions.tier_actions import forget_tier_actions
from tests.factories import CustomerFactory, record

pytestmark = pytest.mark.django_db

URL = "/api/v1/predictions/"
JOBS = f"{URL}jobs/"
# The columns scoring itself decides; the others say who asked and how (source, job, request).
SCORED = ("churn_probability", "risk_level", "recommendations", "offer", "top_factors", "inputs", "model_version_id")


def raw_row(prediction_id: str) -> dict[str, object]:
    """The row as the database holds it, every column (by primary key: SQLite stores UUIDs without dashes)."""
    pk = Prediction.objects.get(prediction_id=prediction_id).pk
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM predictions_prediction WHERE id = %s", [pk])
        names = [c[0] for c in cursor.description]
        return dict(zip(names, cursor.fetchone(), strict=True))


def run_job(client, captured, body) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    """Post a job, run it to the end in-process (the eager tasks fire on commit), return its results CSV."""
    with captured(execute=True):
        posted = client.post(JOBS, body, format="multipart" if "file" in body else "json")
    assert posted.status_code == 202, posted.content
    job = client.get(f"{JOBS}{posted.json()['id']}/").json()
    assert job["status"] == "succeeded", job
    response = client.get(f"{JOBS}{job['id']}/results/")
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def assert_results_read_back(client, rows: list[dict[str, str]]) -> None:  # type: ignore[no-untyped-def]
    for row in rows:
        got = client.get(f"{URL}{row['prediction_id']}/").json()
        assert {
            "prediction_id": row["prediction_id"],
            "customer_id": row["customer_id"],
            "churn_probability": float(row["churn_probability"]),
            "risk_level": row["risk_level"],
            "model_version": row["model_version"],
            "top_factors": json.loads(row["top_factors"]),
        } == {k: got[k] for k in ("prediction_id", "customer_id", "churn_probability", "risk_level",
                                  "model_version", "top_factors")}
        assert got["inputs"]["customer_id"] == row["customer_id"]


def test_a_stored_customers_job_reads_back_as_its_results(key_client, active_version,
                                                          django_capture_on_commit_callbacks):
    ids = [CustomerFactory(customer_id=f"WJ-{i}", tenure_months=1 + 7 * i).customer_id for i in range(6)]
    rows = run_job(key_client, django_capture_on_commit_callbacks, {"customer_ids": ids})
    assert sorted(r["customer_id"] for r in rows) == ids
    assert_results_read_back(key_client, rows)


def test_a_file_job_reads_back_as_its_results(key_client, active_version, django_capture_on_commit_callbacks):
    records = [record(customer_id=f"WF-{i}", tenure_months=2 + 9 * i, contract_type="Month-to-month")
               for i in range(5)]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=RECORD_FIELDS)
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in records)
    upload = SimpleUploadedFile("prospects.csv", text.getvalue().encode(), content_type="text/csv")
    rows = run_job(key_client, django_capture_on_commit_callbacks, {"file": upload})
    assert sorted(r["customer_id"] for r in rows) == [r["customer_id"] for r in records]
    assert_results_read_back(key_client, rows)
    got = key_client.get(f"{URL}{rows[0]['prediction_id']}/").json()
    assert got["recommendations"]
    assert got["inputs"]["tenure_months"] in {r["tenure_months"] for r in records}


def test_every_path_stores_a_customer_in_the_same_cells(key_client, active_version,
                                                        django_capture_on_commit_callbacks):
    RiskTierAction.objects.update(recommendations=["Call them", "Offer a discount"])  # JSON with a separator
    forget_tier_actions()
    CustomerFactory(customer_id="WS-1", tenure_months=2, contract_type="Month-to-month")
    single = key_client.post(URL, {"customer_id": "WS-1"}, format="json").json()["prediction_id"]
    batch = key_client.post(f"{URL}batch/", {"customers": [{"customer_id": "WS-1"}]},
                            format="json").json()["predictions"][0]["prediction_id"]
    assert predictions_score_stored(customer_ids=["WS-1"]) == 1
    rescore = str(Prediction.objects.get(customer_id="WS-1", source=PredictionSource.RESCORE).prediction_id)
    job = run_job(key_client, django_capture_on_commit_callbacks, {"customer_ids": ["WS-1"]})[0]["prediction_id"]
    rows = {name: raw_row(pid) for name, pid in
            (("single", single), ("batch", batch), ("rescore", rescore), ("job", job))}
    first = {c: rows["single"][c] for c in SCORED}
    for name, row in rows.items():
        assert {c: row[c] for c in SCORED} == first, name
    assert {name: (row["source"], row["batch_job_id"] is not None, row["previous_risk_level"])
            for name, row in rows.items()} == {
        "single": ("api", False, ""), "batch": ("api_batch", False, ""), "rescore": ("rescore", False, ""),
        "job": ("job", True, rows["single"]["risk_level"]),
    }
    assert rows["single"]["department_id"] is not None
    assert rows["job"]["department_id"] is None


@pytest.fixture
def added_column():
    """A column added to the predictions table and the model, with a default no writer knows of."""
    field = models.CharField(max_length=20, default="added-later", blank=True)
    with connection.cursor() as cursor:
        # Nullable in the database: a writer that leaves the column out stores NULL, not the default.
        cursor.execute("ALTER TABLE predictions_prediction ADD COLUMN added_later varchar(20) NULL")
    field.contribute_to_class(Prediction, "added_later")
    Prediction._meta._expire_cache()
    writes.forget_column_plan()
    yield "added_later"
    Prediction._meta.local_fields.remove(field)
    delattr(Prediction, "added_later")
    Prediction._meta._expire_cache()
    writes.forget_column_plan()
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE predictions_prediction DROP COLUMN added_later")


def test_a_column_added_to_the_model_takes_its_default_on_every_path(
    key_client, active_version, added_column, django_capture_on_commit_callbacks
):
    CustomerFactory(customer_id="WA-1")
    single = key_client.post(URL, record(customer_id="WA-2"), format="json")
    reference = key_client.post(URL, {"customer_id": "WA-1"}, format="json")
    batch = key_client.post(f"{URL}batch/", {"customers": [record(customer_id="WA-3"), {"customer_id": "WA-1"}]},
                            format="json")
    assert (single.status_code, reference.status_code, batch.status_code) == (201, 201, 200)
    predictions_score_stored(customer_ids=["WA-1"])
    run_job(key_client, django_capture_on_commit_callbacks, {"customer_ids": ["WA-1", "WA-2"]})
    assert Customer.objects.filter(customer_id__in=["WA-2", "WA-3"]).count() == 2
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT source, {added_column} FROM predictions_prediction ORDER BY id")
        stored = cursor.fetchall()
    assert sorted(stored) == sorted([("api", "added-later")] * 2 + [("api_batch", "added-later")] * 2
                                    + [("rescore", "added-later"), ("job", "added-later"), ("job", "added-later")])


def test_the_plan_writes_every_column_of_the_model_once():
    plan = [c.field.column for c in writes.column_plan()]
    expected = {f.column for f in Prediction._meta.concrete_fields if not f.primary_key}
    assert len(plan) == len(set(plan))
    assert set(plan) == expected


def test_texts_with_copys_special_characters_are_stored_as_given(key_client, active_version,
                                                                 django_capture_on_commit_callbacks):
    # Recommendations are free text operators edit: tabs, newlines and backslashes are theirs to use.
    texts = ["Call\tthem", "Line one\nline two", "C:\\offers\\ 15%", 'quote " and \\N', "\\"]
    RiskTierAction.objects.update(recommendations=texts)
    forget_tier_actions()
    CustomerFactory(customer_id="WT-1")
    single = key_client.post(URL, record(customer_id="WT-2"), format="json").json()["prediction_id"]
    batch = key_client.post(f"{URL}batch/", {"customers": [record(customer_id="WT-3")]},
                            format="json").json()["predictions"][0]["prediction_id"]
    job = run_job(key_client, django_capture_on_commit_callbacks, {"customer_ids": ["WT-1"]})[0]["prediction_id"]
    for prediction_id in (single, batch, job):
        assert key_client.get(f"{URL}{prediction_id}/").json()["recommendations"] == texts
