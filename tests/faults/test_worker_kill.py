"""Issue 11 finding 13: a worker SIGKILLed mid-job and mid-ingestion, with no beat running.

The surviving worker sends the watchdogs itself (churn_platform.celery.Watchdogs); the
thresholds are shortened here (the defaults, 60 s stale and a one-minute watchdog, bound the
takeover at two minutes). Each test prints the takeover time.
"""

from __future__ import annotations

import os
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Count

from tests.jobs.conftest import wait_for

pytestmark = [pytest.mark.timeout(600), pytest.mark.faults, pytest.mark.slow, pytest.mark.postgres]

FAST_TAKEOVER = {"WORKER_WATCHDOG_SECONDS": "2", "BATCH_CHUNK_STALE_SECONDS": "4", "INGESTION_STALE_SECONDS": "4",
                 "INGESTION_HEARTBEAT_SECONDS": "1"}


def kill_worker_of(celery_workers, pid: int) -> None:  # type: ignore[no-untyped-def]
    index = next(i for i, proc in enumerate(celery_workers.procs) if os.getpgid(pid) == proc.pid)
    celery_workers.kill_group(index)


def test_a_worker_killed_mid_job_is_taken_over_without_beat(celery_workers, active_version, store_customers):
    from predictions.batch_jobs.create import batch_job_create
    from predictions.models import BatchChunk, BatchChunkStatus, BatchJob, BatchJobStatus, Prediction

    ids = store_customers(20_000)
    celery_workers.env_extra.update(FAST_TAKEOVER)
    celery_workers.start(2)
    job = batch_job_create(scope="all", chunk_size=4_000)
    victim = wait_for(
        lambda: BatchChunk.objects.filter(job=job, status=BatchChunkStatus.RUNNING).exclude(worker="").first(),
        timeout=60, interval=0.005, what="a chunk being scored",
    )
    pid = int(victim.worker.rsplit(":", 1)[1])
    kill_worker_of(celery_workers, pid)  # main process and pool child: nothing rejects the message
    killed = time.monotonic()
    wait_for(lambda: BatchChunk.objects.get(pk=victim.pk).status == BatchChunkStatus.DONE, timeout=60, interval=0.2,
             what="the lost chunk scored by the other worker")
    takeover = time.monotonic() - killed
    print(f"\nbatch chunk taken over {takeover:.1f} s after SIGKILL (stale 4 s, watchdog every 2 s)")
    wait_for(lambda: BatchJob.objects.get(pk=job.pk).is_finished, timeout=60, interval=0.2, what="the job")
    job.refresh_from_db()
    assert job.status == BatchJobStatus.SUCCEEDED, job.error
    per_customer = Prediction.objects.filter(batch_job=job).values("customer_id").annotate(n=Count("pk"))
    assert {row["customer_id"]: row["n"] for row in per_customer} == dict.fromkeys(ids, 1)
    victim.refresh_from_db()
    assert victim.attempts >= 2
    assert not victim.worker.endswith(f":{pid}")


def test_a_worker_killed_mid_ingestion_is_taken_over_without_beat(celery_workers, department):
    from accounts.services import Actor
    from customers.ingestion.services import ingestion_upload
    from customers.models import Customer, IngestionChunk, IngestionRun, RunStatus
    from tests.customers.ingestion.conftest import telco, telco_csv

    rows = 30_000
    celery_workers.env_extra.update(FAST_TAKEOVER, INGESTION_CHUNK_ROWS="1000")
    celery_workers.start(2, queues="ingestion")
    run, _ = ingestion_upload(
        upload=SimpleUploadedFile("kill.csv", telco_csv(telco(f"KI-{i:06d}") for i in range(rows))),
        actor=Actor(department_id=department.pk),
    )
    first = wait_for(
        lambda: (IngestionRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).exclude(worker="").first()
                 if IngestionChunk.objects.filter(run_id=run.pk).count() >= 2 else None),
        timeout=90, interval=0.02, what="a run with committed chunks",
    )
    pid = int(first.worker.split(":")[1])
    kill_worker_of(celery_workers, pid)
    killed = time.monotonic()
    wait_for(lambda: IngestionRun.objects.filter(pk=run.pk).exclude(worker=first.worker).exclude(worker="").exists()
             or IngestionRun.objects.get(pk=run.pk).status in {RunStatus.SUCCEEDED, RunStatus.FAILED},
             timeout=60, interval=0.1, what="the run taken over")
    takeover = time.monotonic() - killed
    print(f"\ningestion run taken over {takeover:.1f} s after SIGKILL (stale 4 s, heartbeat 1 s, watchdog every 2 s)")
    wait_for(lambda: IngestionRun.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED, timeout=120, interval=0.3,
             what="the run to succeed")
    run.refresh_from_db()
    assert run.attempts >= 2
    # nothing lost, nothing written twice
    assert Customer.objects.filter(customer_id__startswith="KI-").count() == rows
    assert run.counts["read"] == rows
    assert run.counts["rejected"] == 0
    assert run.counts["created"] + run.counts["updated"] + run.counts["unchanged"] == rows
