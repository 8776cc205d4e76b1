"""A worker that dies or fails mid-file: the next attempt resumes, nothing is written twice or lost."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import OperationalError
from django.utils import timezone

from accounts.services import Actor
from customers.ingestion import writers
from customers.ingestion.services import ingestion_run_execute, ingestion_runs_resume_stale, ingestion_upload
from customers.models import Customer, IngestionChunk, IngestionRun, Outcome, QuarantinedRow, RunStatus
from customers.tasks import ingestion_run_process
from tests.customers.ingestion.conftest import telco, telco_csv

pytestmark = pytest.mark.django_db


class WorkerKilled(BaseException):
    """Stands for SIGKILL: nothing in the worker gets to handle it."""


def rows_with_two_bad() -> list[dict[str, str]]:
    rows = [telco(f"K-{i:02d}") for i in range(18)]
    rows[1] = telco("K-01", tenure="-5")
    rows[14] = telco("K-14", Contract="Weekly")
    return rows


@pytest.fixture
def queued_run(department, django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    """A run uploaded and queued; its task has not run."""
    with django_capture_on_commit_callbacks(execute=False):
        run, _ = ingestion_upload(
            upload=SimpleUploadedFile("k.csv", telco_csv(rows_with_two_bad())),
            actor=Actor(department_id=department.pk),
        )
    return run


@pytest.fixture
def fail_chunk(monkeypatch):  # type: ignore[no-untyped-def]
    """Make the writer raise ``exc`` when it is about to write its n-th chunk (once)."""

    def arm(n: int, exc: BaseException) -> None:
        writer_class = type(writers.writer_for_connection())
        original = writer_class.write
        calls = {"n": 0}

        def write(self, job):  # type: ignore[no-untyped-def]
            calls["n"] += 1
            if calls["n"] == n:
                raise exc
            return original(self, job)

        monkeypatch.setattr(writer_class, "write", write)

    return arm


def assert_complete(run: IngestionRun) -> None:
    run.refresh_from_db()
    assert run.status == RunStatus.PARTIALLY_SUCCEEDED
    assert run.counts == {"read": 18, "created": 16, "updated": 0, "unchanged": 0, "rejected": 2}
    assert Customer.objects.count() == 16
    assert Outcome.objects.count() == 16
    assert QuarantinedRow.objects.filter(run=run).count() == 2
    assert sorted(IngestionChunk.objects.filter(run=run).values_list("index", flat=True)) == [0, 1, 2, 3, 4]


def test_a_worker_killed_mid_file_is_resumed_by_the_next_delivery(queued_run, fail_chunk):
    # given a worker that dies while writing the third chunk
    fail_chunk(3, WorkerKilled())
    with pytest.raises(WorkerKilled):
        ingestion_run_execute(run_id=queued_run.pk)
    queued_run.refresh_from_db()
    assert queued_run.status == RunStatus.RUNNING
    assert queued_run.counts["read"] == 8  # two chunks committed
    assert Customer.objects.count() == 7

    # while its heartbeat is fresh, a second delivery leaves the run alone
    assert ingestion_run_execute(run_id=queued_run.pk).status == RunStatus.RUNNING
    assert Customer.objects.count() == 7

    # when the heartbeat is stale, the redelivered task takes over and finishes the file
    IngestionRun.objects.filter(pk=queued_run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    ingestion_run_execute(run_id=queued_run.pk)

    assert_complete(queued_run)
    assert queued_run.attempts == 2


def test_the_stale_run_sweeper_queues_the_run_again(queued_run, fail_chunk, django_capture_on_commit_callbacks):
    fail_chunk(2, WorkerKilled())
    with pytest.raises(WorkerKilled):
        ingestion_run_execute(run_id=queued_run.pk)
    IngestionRun.objects.filter(pk=queued_run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))

    assert ingestion_runs_resume_stale() == [str(queued_run.pk)]
    assert_complete(queued_run)


def test_an_error_mid_file_fails_the_run_and_a_retry_resumes_it(
    queued_run, fail_chunk, key_client, django_capture_on_commit_callbacks
):
    fail_chunk(4, RuntimeError("disk on fire"))
    ingestion_run_execute(run_id=queued_run.pk)
    queued_run.refresh_from_db()
    assert queued_run.status == RunStatus.FAILED
    assert queued_run.error == "RuntimeError: disk on fire"
    assert "Traceback" in queued_run.details["traceback"]

    with django_capture_on_commit_callbacks(execute=True):
        response = key_client.post(f"/api/v1/ingestions/{queued_run.pk}/retry/")
    assert response.status_code == 202
    assert_complete(queued_run)


def test_a_transient_database_error_is_retried_by_the_task(queued_run, fail_chunk):
    fail_chunk(2, OperationalError("server closed the connection unexpectedly"))
    result = ingestion_run_process.apply(args=[str(queued_run.pk)], throw=False)
    assert result.get() == RunStatus.PARTIALLY_SUCCEEDED
    assert_complete(queued_run)


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_parallel_writers_commit_every_chunk_once(department, settings, django_db_blocker):
    """The worker path: autocommit, two writer threads with their own connections."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("COPY writers need PostgreSQL")
    settings.INGESTION_WRITERS = 2
    rows = [telco(f"P-{i:03d}") for i in range(60)]
    rows[10] = telco("P-050", tenure=2, TotalCharges=170)  # replaced by row 50, six chunks later
    run, _ = ingestion_upload(
        upload=SimpleUploadedFile("p.csv", telco_csv(rows)), actor=Actor(department_id=department.pk)
    )
    run.refresh_from_db()
    assert run.status == RunStatus.PARTIALLY_SUCCEEDED
    assert run.counts == {"read": 60, "created": 59, "updated": 0, "unchanged": 0, "rejected": 1}
    assert run.chunks.count() == 15
    assert Customer.objects.get(customer_id="P-050").tenure_months == 12
    superseded = run.quarantined_rows.get()
    assert superseded.line == 12
    assert superseded.raw["tenure_months"] == 2


@pytest.mark.postgres
def test_a_customer_inserted_by_someone_else_meanwhile_falls_back_to_the_merge(upload, monkeypatch):
    """The fast path INSERTs customers it did not find; a concurrent insert makes it merge instead."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the COPY writer is PostgreSQL's")
    upload(telco_csv([telco("CC-1"), telco("CC-2")]))
    # as if CC-1 had not been there when the chunk looked: the plain INSERT meets it
    blind = writers._statement(
        f"fresh AS ({writers._ROWS} RETURNING id, customer_id, true AS created), up AS (SELECT * FROM fresh)"
    )
    monkeypatch.setitem(writers._STATEMENTS, "split", blind)

    run = upload(telco_csv([telco("CC-1", tenure=13, TotalCharges=1105), telco("CC-2"), telco("CC-3")]))

    assert run.counts == {"read": 3, "created": 1, "updated": 1, "unchanged": 1, "rejected": 0}
    assert Customer.objects.get(customer_id="CC-1").tenure_months == 13
