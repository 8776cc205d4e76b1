"""Batch scoring jobs in-process (eager Celery): scopes, results, idempotency, flags, API, admin."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.services import SYSTEM, Actor, api_key_create
from customers.models import Customer
from predictions import bulk
from predictions.batch_jobs.common import BatchJobInputError, BatchJobStateError
from predictions.batch_jobs.create import batch_job_create
from predictions.batch_jobs.operator_actions import batch_job_cancel, batch_job_schedule_full
from predictions.batch_jobs.plan import batch_job_start
from predictions.batch_jobs.score import batch_chunk_score
from predictions.batch_jobs.watchdog import batch_jobs_watchdog
from predictions.models import (
    BatchChunk,
    BatchChunkStatus,
    BatchJob,
    BatchJobScope,
    BatchJobStatus,
    Prediction,
    PredictionSource,
)
from predictions.services import predictions_score_batch
from predictions.signals import batch_job_finished
from predictions.tasks import batch_job_score_chunk

pytestmark = pytest.mark.django_db

URL = "/api/v1/predictions/jobs/"


def run_job(django_capture_on_commit_callbacks, **kwargs) -> BatchJob:  # type: ignore[no-untyped-def]
    """Create a job and run it to the end in-process (the eager tasks fire on commit)."""
    with django_capture_on_commit_callbacks(execute=True):
        job = batch_job_create(**kwargs)
    job.refresh_from_db()
    return job


def key_actor(api_key) -> Actor:  # type: ignore[no-untyped-def]
    """The actor of a key made by the api_key fixture: jobs it starts belong to its department."""
    key = api_key[0]
    return Actor(api_key_id=key.pk, api_key_name=key.name, department_id=key.department_id)


def results_csv(client, job_id: int) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    response = client.get(f"{URL}{job_id}/results/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


# --- results ------------------------------------------------------------------------------------


def test_a_full_job_scores_every_customer_exactly_as_in_process_scoring(
    active_version, store_customers, django_capture_on_commit_callbacks
):
    # given 1,050 stored customers and chunks of 200
    ids = store_customers(1050)
    # when every customer is scored by a job
    job = run_job(django_capture_on_commit_callbacks, scope=BatchJobScope.ALL, chunk_size=200)
    # then it succeeded in 6 chunks, one prediction per customer
    assert (job.status, job.total, job.scored, job.failed) == (BatchJobStatus.SUCCEEDED, 1050, 1050, 0)
    assert (job.chunk_count, job.chunks_done, job.progress) == (6, 6, 1.0)
    assert job.model_version_id == active_version.pk
    rows = {p.customer_id: p for p in Prediction.objects.filter(batch_job=job)}
    assert sorted(rows) == sorted(ids)
    assert {p.source for p in rows.values()} == {PredictionSource.JOB}
    # and each equals what the in-process scoring path gives for the same customer
    in_process = predictions_score_batch(items=[{"customer_id": c} for c in ids]).predictions
    for expected in in_process:
        got = rows[expected["customer_id"]]
        assert got.churn_probability == expected["churn_probability"]
        assert got.risk_level == expected["risk_level"]
        assert got.factors == expected["top_factors"]
        assert got.recommendations == expected["recommendations"]
        assert got.model_version_id == active_version.pk


def test_the_job_reports_per_worker_throughput_and_chunk_timings(
    active_version, store_customers, django_capture_on_commit_callbacks
):
    store_customers(300)
    job = run_job(django_capture_on_commit_callbacks, scope=BatchJobScope.ALL, chunk_size=100)
    (figures,) = job.details["workers"].values()
    assert figures["rows"] == 300
    assert figures["chunks"] == 3
    assert figures["rows_per_second"] > 0
    chunk = job.chunks.first()
    assert set(chunk.timings) == {"read", "score", "write", "commit"}
    assert chunk.attempts == 1
    assert job.duration_seconds is not None


def test_results_file_and_api_stream_the_same_rows(
    active_version, store_customers, api_key, key_client, django_capture_on_commit_callbacks
):
    store_customers(250)
    job = run_job(django_capture_on_commit_callbacks, scope=BatchJobScope.ALL, chunk_size=100, actor=key_actor(api_key))
    assert job.output_file.name == f"batch_jobs/results/job-{job.pk}.csv"
    rows = results_csv(key_client, job.pk)
    assert len(rows) == 250
    stored = {p.customer_id: p for p in Prediction.objects.filter(batch_job=job)}
    for row in rows:
        prediction = stored[row["customer_id"]]
        assert float(row["churn_probability"]) == prediction.churn_probability
        assert row["risk_level"] == prediction.risk_level
        assert row["model_version"] == active_version.version
        assert json.loads(row["top_factors"]) == prediction.factors
        assert row["prediction_id"] == str(prediction.prediction_id)
        assert row["risk_increased"] == "false"
    # without the file (a job still running, or files turned off) the rows stream from the database
    job.output_file = ""
    job.save(update_fields=["output_file"])
    streamed = results_csv(key_client, job.pk)
    assert [(r["customer_id"], r["churn_probability"]) for r in streamed] == sorted(
        (r["customer_id"], r["churn_probability"]) for r in rows
    )
    assert all(json.loads(r["top_factors"]) == stored[r["customer_id"]].factors for r in streamed)


# --- idempotency ----------------------------------------------------------------------------------


def test_a_duplicate_chunk_delivery_writes_nothing_twice(
    active_version, store_customers, django_capture_on_commit_callbacks
):
    store_customers(300)
    job = run_job(django_capture_on_commit_callbacks, scope=BatchJobScope.ALL, chunk_size=100)
    before = (Prediction.objects.count(), job.scored, job.chunks_done)
    # when every chunk's message is delivered again (a redelivery after the work committed)
    for chunk_id in job.chunks.values_list("pk", flat=True):
        assert batch_job_score_chunk.apply(kwargs={"chunk_id": chunk_id}).get()["status"] == "skipped"
    # then nothing was written or counted twice
    job.refresh_from_db()
    assert (Prediction.objects.count(), job.scored, job.chunks_done) == before
    assert set(job.chunks.values_list("attempts", flat=True)) == {1}


def test_the_database_refuses_a_second_prediction_per_customer_per_job(
    active_version, store_customers, django_capture_on_commit_callbacks
):
    store_customers(10)
    job = run_job(django_capture_on_commit_callbacks, scope=BatchJobScope.ALL)
    copy = Prediction.objects.filter(batch_job=job).first()
    copy.pk = None
    copy.prediction_id = None
    with pytest.raises(IntegrityError), transaction.atomic():
        Prediction.objects.create(**{f.attname: getattr(copy, f.attname) for f in Prediction._meta.concrete_fields
                                     if f.attname not in ("id", "prediction_id")})


def test_a_chunk_that_fails_counts_its_rows_as_failed_and_the_rest_of_the_job_goes_on(
    active_version, store_customers, django_capture_on_commit_callbacks, monkeypatch
):
    store_customers(300)
    real = bulk.score_and_write
    calls = {"n": 0}

    def flaky(data, scorer, context):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise ValueError("the scorer broke")
        return real(data, scorer, context)

    monkeypatch.setattr(bulk, "score_and_write", flaky)
    job = run_job(django_capture_on_commit_callbacks, scope=BatchJobScope.ALL, chunk_size=100)
    assert job.status == BatchJobStatus.PARTIALLY_SUCCEEDED
    assert (job.scored, job.failed) == (200, 100)
    failed = job.chunks.get(status=BatchChunkStatus.FAILED)
    assert "the scorer broke" in failed.error
    assert Prediction.objects.filter(batch_job=job).count() == 200


# --- scopes ---------------------------------------------------------------------------------------


def test_a_list_of_ids_scores_those_and_reports_unknown_ones(
    active_version, store_customers, django_capture_on_commit_callbacks
):
    ids = store_customers(50)
    job = run_job(django_capture_on_commit_callbacks, scope=BatchJobScope.IDS,
                  customer_ids=[*ids[:20], "GHOST-1", ids[3], "GHOST-2"], chunk_size=7)
    assert job.status == BatchJobStatus.PARTIALLY_SUCCEEDED
    assert (job.total, job.scored, job.failed, job.chunk_count) == (22, 20, 2, 3)
    assert job.details["unknown_customer_ids"] == ["GHOST-1", "GHOST-2"]
    assert set(Prediction.objects.filter(batch_job=job).values_list("customer_id", flat=True)) == set(ids[:20])


def test_a_filter_scores_only_the_matching_customers(
    active_version, store_customers, django_capture_on_commit_callbacks
):
    store_customers(200)
    matching = set(Customer.objects.filter(contract_type="Two year", tenure_months__gte=24)
                   .values_list("customer_id", flat=True))
    assert 0 < len(matching) < 200
    job = run_job(django_capture_on_commit_callbacks, scope=BatchJobScope.FILTER,
                  filters={"contract_type": "Two year", "min_tenure": 24}, chunk_size=10)
    assert job.status == BatchJobStatus.SUCCEEDED
    assert set(Prediction.objects.filter(batch_job=job).values_list("customer_id", flat=True)) == matching


def test_a_bad_filter_is_a_field_error(active_version):
    with pytest.raises(BatchJobInputError) as caught:
        batch_job_create(scope=BatchJobScope.FILTER, filters={"contract_type": "Weekly", "colour": "red"})
    assert set(caught.value.errors) == {"filter.colour"}
    with pytest.raises(BatchJobInputError) as caught:
        batch_job_create(scope=BatchJobScope.FILTER, filters={"contract_type": "Weekly"})
    assert set(caught.value.errors) == {"filter.contract_type"}


TELCO_HEADER = ("customerID,gender,SeniorCitizen,Partner,Dependents,tenure,PhoneService,MultipleLines,"
                "InternetService,OnlineSecurity,OnlineBackup,DeviceProtection,TechSupport,StreamingTV,"
                "StreamingMovies,Contract,PaperlessBilling,PaymentMethod,MonthlyCharges,TotalCharges,Churn")
TELCO_ROW = ("{id},Female,0,Yes,No,{tenure},Yes,No,Fiber optic,No,No,No,No,Yes,Yes,Month-to-month,Yes,"
             "Electronic check,85.5,{total},No")


def test_the_api_lists_a_files_rejected_rows_with_their_lines(active_version, key_client,
                                                              django_capture_on_commit_callbacks):
    lines = [TELCO_HEADER, TELCO_ROW.format(id="F-1", tenure=3, total=256.5),
             TELCO_ROW.format(id="F-2", tenure=-1, total=10), TELCO_ROW.format(id="F-1", tenure=4, total=342)]
    upload = SimpleUploadedFile("p.csv", "\n".join(lines).encode())
    with django_capture_on_commit_callbacks(execute=True):
        job_id = key_client.post(URL, {"file": upload}, format="multipart").json()["id"]
    body = key_client.get(f"{URL}{job_id}/").json()
    assert (body["scope"], body["file"], body["counts"]["scored"], body["counts"]["failed"]) == ("file", "p.csv", 1, 2)
    assert [(r["line"], r["customer_id"], list(r["errors"])) for r in body["rejected"]["rows"]] == [
        (2, "F-1", ["customer_id"]), (3, "F-2", ["tenure_months"])]


def test_an_uploaded_file_is_scored_with_bad_and_repeated_rows_reported(
    active_version, django_capture_on_commit_callbacks
):
    lines = [TELCO_HEADER]
    lines += [TELCO_ROW.format(id=f"F-{i}", tenure=i + 1, total=85.5 * (i + 1)) for i in range(30)]
    lines.append(TELCO_ROW.format(id="F-BAD", tenure=-4, total=10))  # line 32: negative tenure
    lines.append(TELCO_ROW.format(id="F-3", tenure=9, total=700))  # line 33: F-3 again
    upload = SimpleUploadedFile("prospects.csv", ("\n".join(lines) + "\n").encode(), content_type="text/csv")
    job = run_job(django_capture_on_commit_callbacks, scope=BatchJobScope.FILE, upload=upload, chunk_size=8)
    assert job.status == BatchJobStatus.PARTIALLY_SUCCEEDED
    assert (job.total, job.scored, job.failed) == (32, 30, 2)
    # as in ingestion, the last row of a customer wins and the earlier one is reported as superseded
    assert job.details["rejected"] == [{"line": 5, "customer_id": "F-3", "errors": {
        "customer_id": ["Appears again on line 33; that later row was used."]}}]
    bad = [e for c in job.chunks.all() for e in c.errors]
    assert [(e["line"], e["customer_id"], list(e["errors"])) for e in bad] == [(32, "F-BAD", ["tenure_months"])]
    prediction = Prediction.objects.get(batch_job=job, customer_id="F-3")
    assert prediction.scored_fields["tenure_months"] == 9  # the last row, kept for drift checks
    assert [c.size for c in job.chunks.order_by("index")] == [8, 8, 8, 7]
    assert not Customer.objects.exists()  # a file is scored, not stored
    # the parts the file was split into are gone; the upload stays with the job
    assert not any(default_storage.exists(c.part_name) for c in job.chunks.all())
    assert default_storage.exists(job.input_file.name)


def test_a_file_of_ids_alone_scores_those_stored_customers(active_version, store_customers,
                                                         django_capture_on_commit_callbacks):
    ids = store_customers(12)
    upload = SimpleUploadedFile("ids.csv", ("customer_id\n" + "\n".join(ids[:5]) + "\n").encode())
    job = run_job(django_capture_on_commit_callbacks, scope=BatchJobScope.FILE, upload=upload)
    assert (job.scope, job.customer_ids, job.scored) == (BatchJobScope.IDS, ids[:5], 5)


def test_a_file_that_cannot_be_read_when_planned_fails_the_job_with_the_reason(
    active_version, django_capture_on_commit_callbacks
):
    upload = SimpleUploadedFile("p.csv", (TELCO_HEADER + "\n" + TELCO_ROW.format(id="A", tenure=2, total=171)).encode())
    with django_capture_on_commit_callbacks(execute=True):
        job = batch_job_create(scope=BatchJobScope.FILE, upload=upload)
        # the stored upload is replaced by something else before a worker plans it
        job.input_file.storage.delete(job.input_file.name)
        job.input_file.storage.save(job.input_file.name, io.BytesIO(b"unrelated,columns\n1,2\n"))
    job.refresh_from_db()
    assert job.status == BatchJobStatus.FAILED
    assert "not a header of known columns" in job.error
    assert not job.chunks.exists()


def test_a_broken_quote_line_is_reported_and_the_rest_of_the_file_is_scored(
    active_version, key_client, settings, django_capture_on_commit_callbacks
):
    """A line ingestion quarantines (a quote left open) used to fail the whole job."""
    lines = [TELCO_HEADER]
    lines += [TELCO_ROW.format(id=f"Q-{i}", tenure=i + 1, total=85.5 * (i + 1)) for i in range(6)]
    lines.insert(4, TELCO_ROW.format(id='"Q-BROKEN', tenure=3, total=256.5))  # line 5: the quote never closes
    lines.append(TELCO_ROW.format(id="Q-1", tenure=20, total=1710))  # line 9: Q-1 again; this row wins
    upload = SimpleUploadedFile("quotes.csv", ("\n".join(lines) + "\n").encode())
    settings.BATCH_CHUNK_SIZE = 4
    with django_capture_on_commit_callbacks(execute=True):
        created = key_client.post(URL, {"file": upload}, format="multipart")
    assert created.status_code == 202, created.json()
    body = key_client.get(f"{URL}{created.json()['id']}/").json()
    assert body["status"] == "partially_succeeded", body
    assert (body["counts"]["total"], body["counts"]["scored"], body["counts"]["failed"]) == (8, 6, 2)
    rows = body["rejected"]["rows"]
    assert [(r["line"], r["customer_id"]) for r in rows] == [(3, "Q-1"), (5, "")]
    assert rows[0]["errors"] == {"customer_id": ["Appears again on line 9; that later row was used."]}
    assert "quote" in rows[1]["errors"]["non_field_errors"][0]
    scored = Prediction.objects.filter(batch_job_id=body["id"])
    assert sorted(scored.values_list("customer_id", flat=True)) == [f"Q-{i}" for i in range(6)]
    assert scored.get(customer_id="Q-1").scored_fields["tenure_months"] == 20


def test_an_unreadable_list_of_ids_is_refused_with_the_reason(active_version):
    upload = SimpleUploadedFile("ids.csv", b'customer_id\nC-1\n"C-2\nC-3\n')
    with pytest.raises(BatchJobInputError) as caught:
        batch_job_create(scope=BatchJobScope.FILE, upload=upload)
    assert "cannot be read as CSV" in caught.value.errors["file"][0]


def test_a_json_file_is_refused_with_where_to_send_it(active_version):
    upload = SimpleUploadedFile("x.json", b'[{"customer_id": "A"}]')
    with pytest.raises(BatchJobInputError) as caught:
        batch_job_create(scope=BatchJobScope.FILE, upload=upload)
    assert "Batch jobs read CSV files" in caught.value.errors["file"][0]


def test_a_file_without_customer_ids_is_refused(active_version):
    upload = SimpleUploadedFile("x.csv", b"name,age\nbob,4\n")
    with pytest.raises(BatchJobInputError) as caught:
        batch_job_create(scope=BatchJobScope.FILE, upload=upload)
    assert "customer_id" in caught.value.errors["file"][0]


# --- campaign flags ----------------------------------------------------------------------------


def test_customers_whose_risk_rose_are_flagged_after_the_job(
    active_version, store_customers, django_capture_on_commit_callbacks
):
    ids = store_customers(40)
    first = run_job(django_capture_on_commit_callbacks, scope=BatchJobScope.ALL)
    assert first.risk_increased == 0  # nobody had a previous prediction
    levels = dict(Prediction.objects.filter(batch_job=first).values_list("customer_id", "risk_level"))
    # when some customers' situation worsens: month-to-month newcomers on fibre, paying a lot
    worse = [c for c in ids if levels[c] in ("low", "medium")][:5]
    Customer.objects.filter(customer_id__in=worse).update(
        contract_type="Month-to-month", tenure_months=1, total_charges=110, monthly_charges=110,
        internet_service="Fiber optic", online_security="No", online_backup="No", device_protection="No",
        tech_support="No", streaming_tv="No", streaming_movies="No", payment_method="Electronic check",
    )
    received = []
    batch_job_finished.connect(lambda sender, job, **kw: received.append(job.pk), weak=False, dispatch_uid="t")
    try:
        second = run_job(django_capture_on_commit_callbacks, scope=BatchJobScope.ALL)
    finally:
        batch_job_finished.disconnect(dispatch_uid="t")
    # then exactly the customers whose level went up are flagged, with the level they came from
    rank = {"low": 0, "medium": 1, "high": 2, "critical": 3}
    now = dict(Prediction.objects.filter(batch_job=second).values_list("customer_id", "risk_level"))
    rose = {c for c in ids if rank[now[c]] > rank[levels[c]]}
    assert len(rose) >= 3
    assert rose <= set(worse)
    flagged = Prediction.objects.filter(batch_job=second, risk_increased=True)
    assert set(flagged.values_list("customer_id", flat=True)) == rose
    assert all(p.previous_risk_level == levels[p.customer_id] for p in flagged)
    assert second.risk_increased == len(rose)
    # and the campaigns hear of the job once, and can list the flagged customers
    assert received == [second.pk]
    from predictions.selectors import risk_increases

    assert set(risk_increases(job=second).values_list("customer_id", flat=True)) == rose


# --- lifecycle ------------------------------------------------------------------------------------


def test_a_cancelled_job_skips_the_chunks_not_started(active_version, store_customers):
    store_customers(30)
    job = batch_job_create(scope=BatchJobScope.ALL, chunk_size=10)  # no commit: nothing runs yet
    batch_job_start(job_id=job.pk)
    batch_job_cancel(job_id=job.pk, actor=SYSTEM)
    for chunk in job.chunks.all():
        assert batch_chunk_score(chunk_id=chunk.pk) is None
    assert set(job.chunks.values_list("status", flat=True)) == {BatchChunkStatus.CANCELLED}
    assert not Prediction.objects.exists()
    with pytest.raises(BatchJobStateError):
        batch_job_cancel(job_id=job.pk, actor=SYSTEM)


def test_the_watchdog_resends_chunks_whose_worker_died_and_finishes_the_job(
    active_version, store_customers, django_capture_on_commit_callbacks
):
    store_customers(30)
    job = batch_job_create(scope=BatchJobScope.ALL, chunk_size=10)
    batch_job_start(job_id=job.pk)  # planned and "sent", but the messages were lost
    long_ago = timezone.now() - timezone.timedelta(hours=1)
    BatchChunk.objects.filter(job=job, index=0).update(status=BatchChunkStatus.RUNNING, started_at=long_ago,
                                                       attempts=1)
    BatchChunk.objects.filter(job=job).exclude(index=0).update(dispatched_at=long_ago)
    with django_capture_on_commit_callbacks(execute=True):
        summary = batch_jobs_watchdog(queue_depth=0)
    assert summary["chunks_resent"] == 3
    job.refresh_from_db()
    assert (job.status, job.scored) == (BatchJobStatus.SUCCEEDED, 30)
    assert job.chunks.get(index=0).attempts == 2


def test_the_watchdog_leaves_pending_chunks_alone_while_the_queue_holds_messages(active_version, store_customers):
    store_customers(20)
    job = batch_job_create(scope=BatchJobScope.ALL, chunk_size=10)
    batch_job_start(job_id=job.pk)
    BatchChunk.objects.filter(job=job).update(dispatched_at=timezone.now() - timezone.timedelta(hours=1))
    assert batch_jobs_watchdog(queue_depth=5)["chunks_resent"] == 0


def test_the_nightly_job_does_not_start_twice(active_version, store_customers):
    store_customers(5)
    first = batch_job_schedule_full()
    assert first is not None
    assert batch_job_schedule_full() is None  # the first one is still queued


# --- API ------------------------------------------------------------------------------------------


def test_post_all_returns_202_with_the_job_then_the_job_shows_progress(
    active_version, store_customers, key_client, django_capture_on_commit_callbacks
):
    store_customers(120)
    with django_capture_on_commit_callbacks(execute=True):
        response = key_client.post(URL, {"scope": "all"}, format="json")
    assert response.status_code == 202
    body = response.json()
    assert response["Location"].endswith(f"{URL}{body['id']}/")
    assert {"id", "status", "progress", "counts", "model_version", "started_at", "finished_at"} <= set(body)
    assert body["model_version"] == active_version.version
    detail = key_client.get(f"{URL}{body['id']}/").json()
    assert detail["status"] == "succeeded"
    assert detail["progress"] == 1.0
    assert detail["counts"] == {"total": 120, "scored": 120, "failed": 0, "risk_increased": 0}
    assert detail["started_at"].endswith("Z")
    assert detail["finished_at"].endswith("Z")
    assert detail["results_url"].endswith(f"{URL}{body['id']}/results/")
    assert key_client.get(URL).json()["results"][0]["id"] == body["id"]


def test_post_ids_and_filter_and_file(active_version, store_customers, key_client,
                                      django_capture_on_commit_callbacks):
    ids = store_customers(20)
    # one at a time: a department may have two jobs queued or running at once
    with django_capture_on_commit_callbacks(execute=True):
        by_ids = key_client.post(URL, {"customer_ids": ids[:3]}, format="json").json()
    with django_capture_on_commit_callbacks(execute=True):
        by_filter = key_client.post(URL, {"filter": {"contract_type": "Month-to-month"}}, format="json").json()
    with django_capture_on_commit_callbacks(execute=True):
        upload = SimpleUploadedFile("ids.csv", ("customerID\n" + "\n".join(ids[:4])).encode())
        by_file = key_client.post(URL, {"file": upload}, format="multipart").json()
    by_ids, by_filter, by_file = (key_client.get(f"{URL}{j['id']}/").json() for j in (by_ids, by_filter, by_file))
    assert (by_ids["scope"], by_ids["counts"]["scored"], by_ids["customer_ids"]) == ("ids", 3, 3)
    assert by_filter["scope"] == "filter"
    assert by_filter["filter"] == {"contract_type": "Month-to-month"}
    assert by_filter["counts"]["scored"] == Customer.objects.filter(contract_type="Month-to-month").count()
    assert (by_file["scope"], by_file["counts"]["scored"]) == ("ids", 4)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "scope"),
        ({"scope": "everyone"}, "scope"),
        ({"scope": "ids"}, "customer_ids"),
        ({"customer_ids": []}, "customer_ids"),
        ({"customer_ids": ["ok", "not ok!"]}, "customer_ids"),
        ({"customer_ids": ["a"], "filter": {"contract_type": "One year"}}, "non_field_errors"),
        ({"scope": "all", "colour": "red"}, "colour"),
        ({"filter": {"contract_type": "Weekly"}}, "filter.contract_type"),
        ({"scope": "filter", "customer_ids": ["a"]}, "scope"),
    ],
)
def test_invalid_job_requests_are_400_with_the_field(active_version, key_client, body, field):
    response = key_client.post(URL, body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not BatchJob.objects.exists()


def test_no_active_model_is_503(key_client, store_customers):
    store_customers(3)
    response = key_client.post(URL, {"scope": "all"}, format="json")
    assert response.status_code == 503
    assert response.json()["code"] == "model_unavailable"


def test_jobs_need_the_scopes(active_version, department):
    from rest_framework.test import APIClient

    from accounts.services import api_key_create

    _, reader = api_key_create(department=department, name="reader", scopes=["customers:read"])
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=reader)
    assert client.post(URL, {"scope": "all"}, format="json").status_code == 403
    assert client.get(URL).status_code == 200
    assert APIClient().get(URL).status_code == 401


def test_unknown_job_is_404_json_even_when_csv_is_asked_for(active_version, key_client):
    assert key_client.get(f"{URL}999/").status_code == 404
    response = key_client.get(f"{URL}999/results/", HTTP_ACCEPT="text/csv")
    assert response.status_code == 404
    assert json.loads(response.content)["code"] == "not_found"


def test_prediction_history_can_be_filtered_by_job_and_flag(
    active_version, store_customers, api_key, key_client, django_capture_on_commit_callbacks
):
    store_customers(8)
    job = run_job(django_capture_on_commit_callbacks, scope=BatchJobScope.ALL, actor=key_actor(api_key))
    page = key_client.get("/api/v1/predictions/", {"batch_job": job.pk, "risk_increased": "false"}).json()
    assert page["count"] == 8
    assert key_client.get("/api/v1/predictions/", {"batch_job": job.pk, "risk_increased": "true"}).json()["count"] == 0


# --- department isolation (issue 11, finding 1) -------------------------------------------------


def _key_client(key: str):  # type: ignore[no-untyped-def]
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)
    return client


def test_another_department_never_sees_a_departments_jobs_or_their_predictions(
    active_version, key_client, other_department, admin_user, django_capture_on_commit_callbacks
):
    """Another department listed A's jobs, read them, downloaded their results and listed their
    predictions through ?batch_job=, prospects of a file never stored as customers included."""
    upload = SimpleUploadedFile("prospects.csv", "\n".join([TELCO_HEADER, TELCO_ROW.format(
        id="P-1", tenure=3, total=256.5)]).encode())
    with django_capture_on_commit_callbacks(execute=True):
        job_id = key_client.post(URL, {"file": upload}, format="multipart").json()["id"]
    prediction_id = str(Prediction.objects.get(batch_job_id=job_id).prediction_id)
    assert key_client.get(f"{URL}{job_id}/").status_code == 200
    assert key_client.get("/api/v1/predictions/", {"batch_job": job_id}).json()["count"] == 1

    other = _key_client(api_key_create(department=other_department, name="theirs")[1])
    assert [j["id"] for j in other.get(URL).json()["results"]] == []
    assert other.get(f"{URL}{job_id}/").status_code == 404
    results = other.get(f"{URL}{job_id}/results/", HTTP_ACCEPT="text/csv")
    assert results.status_code == 404
    assert b"P-1" not in results.content
    assert other.get("/api/v1/predictions/", {"batch_job": job_id}).json()["count"] == 0
    assert "P-1" not in {p["customer_id"] for p in other.get("/api/v1/predictions/").json()["results"]}
    assert other.get(f"/api/v1/predictions/{prediction_id}/").status_code == 404

    from rest_framework.test import APIClient

    superuser = APIClient()
    superuser.force_authenticate(admin_user)
    assert [j["id"] for j in superuser.get(URL).json()["results"]] == [job_id]
    assert superuser.get(f"{URL}{job_id}/results/").status_code == 200
    assert superuser.get("/api/v1/predictions/", {"batch_job": job_id}).json()["count"] == 1


def test_a_user_without_a_department_sees_no_departments_jobs(
    active_version, key_client, db, django_capture_on_commit_callbacks
):
    from rest_framework.test import APIClient

    from tests.factories import UserFactory

    with django_capture_on_commit_callbacks(execute=True):
        job_id = key_client.post(URL, {"customer_ids": ["NOPE-1"]}, format="json").json()["id"]
    loner = APIClient()
    loner.force_authenticate(UserFactory(username="loner"))
    assert loner.get(URL).json()["results"] == []
    assert loner.get(f"{URL}{job_id}/").status_code == 404


def test_results_csv_neutralises_formula_like_ids_but_keeps_numbers(
    active_version, api_key, key_client, django_capture_on_commit_callbacks
):
    """Issue 11 finding 7: job results wrote cells starting with - (and =, +, @) raw."""
    lines = [TELCO_HEADER, TELCO_ROW.format(id="-2-3", tenure=3, total=256.5),
             TELCO_ROW.format(id="-12.5", tenure=4, total=342), TELCO_ROW.format(id="@A1", tenure=5, total=427.5)]
    upload = SimpleUploadedFile("formulas.csv", "\n".join(lines).encode())
    job = run_job(django_capture_on_commit_callbacks, scope=BatchJobScope.FILE, upload=upload,
                  actor=key_actor(api_key))
    if job.failed:  # "@A1" is not a valid id: only what was scored is in the results
        assert job.scored == 2
    from_file = results_csv(key_client, job.pk)
    job.output_file = ""
    job.save(update_fields=["output_file"])
    streamed = results_csv(key_client, job.pk)
    for rows in (from_file, streamed):
        ids = sorted(r["customer_id"] for r in rows)
        assert ids == ["'-2-3", "-12.5"]
        assert all(r["churn_probability"][0] not in "=+-@" for r in rows)
