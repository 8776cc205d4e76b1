"""Issue 11 finding 13: a dead worker's ingestion run is taken over within two minutes.

Heartbeats every 15 s whatever a chunk takes, stale after 60 s, a watchdog every minute; a retry
of a stale run is accepted at once and a retry of a genuinely running run is a 409.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from accounts.services import Actor
from customers.ingestion import writers
from customers.ingestion.services import ingestion_run_execute, ingestion_upload
from customers.models import Customer, IngestionRun, RunStatus
from tests.customers.ingestion.conftest import telco, telco_csv

pytestmark = pytest.mark.django_db


@pytest.fixture
def running_run(department, django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    with django_capture_on_commit_callbacks(execute=False):
        run, _ = ingestion_upload(
            upload=SimpleUploadedFile("t.csv", telco_csv([telco("T-1"), telco("T-2")])),
            actor=Actor(department_id=department.pk),
        )
    IngestionRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, worker="host:1:abc", attempts=1)
    return run


def test_a_retry_of_a_run_whose_worker_still_reports_is_a_409(running_run, key_client):
    IngestionRun.objects.filter(pk=running_run.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=20))
    response = key_client.post(f"/api/v1/ingestions/{running_run.pk}/retry/")
    assert response.status_code == 409
    assert response.json()["code"] == "run_not_retryable"
    assert IngestionRun.objects.get(pk=running_run.pk).worker == "host:1:abc"


def test_a_retry_of_a_run_silent_for_a_minute_is_accepted_at_once(
    running_run, key_client, django_capture_on_commit_callbacks
):
    IngestionRun.objects.filter(pk=running_run.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=61))
    with django_capture_on_commit_callbacks(execute=True):
        response = key_client.post(f"/api/v1/ingestions/{running_run.pk}/retry/")
    assert response.status_code == 202
    run = IngestionRun.objects.get(pk=running_run.pk)
    assert run.status == RunStatus.SUCCEEDED
    assert Customer.objects.filter(customer_id__in=["T-1", "T-2"]).count() == 2


def test_takeover_within_two_minutes_by_default(settings):
    from churn_platform.schedules import schedules_setup

    assert settings.INGESTION_STALE_SECONDS <= 60
    assert 10 <= settings.INGESTION_HEARTBEAT_SECONDS <= 15
    assert settings.BATCH_CHUNK_STALE_SECONDS <= 60
    assert settings.WORKER_WATCHDOG_SECONDS <= 60
    schedules_setup()
    for name in ("ingestion: resume stale runs", "predictions: batch job watchdog"):
        task = PeriodicTask.objects.select_related("crontab").get(name=name)
        assert task.enabled, name
        assert task.interval is None, name
        assert (task.crontab.minute, task.crontab.hour) == ("*", "*"), name


@pytest.mark.django_db(transaction=True)
def test_a_running_run_reports_while_a_slow_chunk_is_written(department, settings, monkeypatch):
    """The heartbeat does not wait for a chunk to commit: a chunk slower than the stale threshold
    must not make a live worker's run look dead."""
    settings.INGESTION_HEARTBEAT_SECONDS = 0.2
    settings.INGESTION_PIPELINE_THREADS = False
    from customers.ingestion import services

    monkeypatch.setattr(services, "ingestion_run_enqueue", lambda run: None)  # executed below, in this thread
    run, _ = ingestion_upload(
        upload=SimpleUploadedFile("slow.csv", telco_csv([telco("S-1"), telco("S-2")])),
        actor=Actor(department_id=department.pk),
    )
    seen: list = []
    writer_class = type(writers.writer_for_connection())
    original = writer_class.write

    def slow_write(self, job):  # type: ignore[no-untyped-def]
        claimed = IngestionRun.objects.get(pk=run.pk).heartbeat_at
        time.sleep(1.0)
        seen.append((claimed, IngestionRun.objects.get(pk=run.pk).heartbeat_at))
        return original(self, job)

    monkeypatch.setattr(writer_class, "write", slow_write)
    ingestion_run_execute(run_id=run.pk)
    assert seen
    claimed, during = seen[0]
    assert during > claimed + timedelta(seconds=0.5)
    assert IngestionRun.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED
