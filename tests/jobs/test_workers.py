"""Batch jobs on real Celery worker processes: killed workers, redelivered and duplicated chunks.

Each test starts `celery worker` subprocesses on the test database and a Redis broker (see
conftest.celery_workers; skipped without PostgreSQL and a separate Redis broker database).
"""

from __future__ import annotations

import os
import signal

import pytest
from django.db.models import Count

from predictions.batch_jobs.create import batch_job_create
from predictions.batch_jobs.watchdog import batch_jobs_watchdog
from predictions.models import BatchChunk, BatchChunkStatus, BatchJob, BatchJobStatus, Prediction
from tests.jobs.conftest import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def assert_scored_exactly_once(job: BatchJob, customer_ids: list[str]) -> None:
    job.refresh_from_db()
    assert job.status == BatchJobStatus.SUCCEEDED, job.error
    assert (job.scored, job.failed, job.chunks_done) == (len(customer_ids), 0, job.chunk_count)
    per_customer = Prediction.objects.filter(batch_job=job).values("customer_id").annotate(n=Count("pk"))
    counts = {row["customer_id"]: row["n"] for row in per_customer}
    assert set(counts) == set(customer_ids)
    assert set(counts.values()) == {1}


def running_chunk(job: BatchJob) -> BatchChunk | None:
    return BatchChunk.objects.filter(job=job, status=BatchChunkStatus.RUNNING).exclude(worker="").first()


def test_a_worker_process_killed_mid_chunk_leaves_every_customer_scored_exactly_once(
    celery_workers, active_version, store_customers
):
    # given 30,000 customers and two worker processes
    ids = store_customers(30_000)
    celery_workers.start(2)
    # when a job runs and the process scoring a chunk is killed (SIGKILL, as the OOM killer does)
    job = batch_job_create(scope="all", chunk_size=5_000)
    victim = wait_for(lambda: running_chunk(job), timeout=60, interval=0.005, what="a chunk being scored")
    os.kill(int(victim.worker.rsplit(":", 1)[1]), signal.SIGKILL)
    # then the chunk's message goes back to the queue (acks_late, reject_on_worker_lost), is scored
    # again, and the job ends with one prediction per customer
    wait_for(lambda: BatchJob.objects.get(pk=job.pk).is_finished, timeout=90, interval=0.2, what="the job")
    assert_scored_exactly_once(job, ids)
    victim.refresh_from_db()
    assert victim.attempts >= 2
    assert victim.status == BatchChunkStatus.DONE

    # and delivering every chunk again to the live workers writes nothing more
    from predictions.tasks import batch_job_score_chunk

    results = [batch_job_score_chunk.delay(chunk_id=pk) for pk in job.chunks.values_list("pk", flat=True)]
    assert {r.get(timeout=60)["status"] for r in results} == {"skipped"}
    assert Prediction.objects.filter(batch_job=job).count() == len(ids)


def test_a_whole_worker_lost_mid_chunk_has_its_chunk_sent_again_by_the_watchdog(
    celery_workers, active_version, store_customers, settings
):
    # given two workers, one of which dies with a chunk in hand (main process and pool child at
    # once, as when a machine is lost: nothing rejects the message, Redis holds it unacknowledged
    # until its visibility timeout, an hour by default)
    ids = store_customers(20_000)
    celery_workers.start(2)
    job = batch_job_create(scope="all", chunk_size=4_000)
    victim = wait_for(lambda: running_chunk(job), timeout=60, interval=0.005, what="a chunk being scored")
    pid = int(victim.worker.rsplit(":", 1)[1])
    index = next(i for i, proc in enumerate(celery_workers.procs) if os.getpgid(pid) == proc.pid)
    celery_workers.kill_group(index)
    # when the watchdog (beat, every five minutes) finds the chunk running without its lock
    settings.BATCH_CHUNK_STALE_SECONDS = 0

    def finished_after_watchdog() -> bool:
        batch_jobs_watchdog()
        return BatchJob.objects.get(pk=job.pk).is_finished

    wait_for(finished_after_watchdog, timeout=60, interval=0.5, what="the job")
    # then the surviving worker scored it: every customer exactly once
    assert_scored_exactly_once(job, ids)
    victim.refresh_from_db()
    assert victim.attempts >= 2
    assert not victim.worker.endswith(f":{pid}")
