"""Celery tasks of the predictions app (queue "batch"). Each takes ids and calls one service.

Every task is safe to deliver twice (see predictions.batch_jobs) and runs with ``acks_late`` and
``reject_on_worker_lost``: a worker killed mid-task leaves its message to be redelivered to
another worker. Transient database and broker errors are retried with exponential backoff.
"""

from __future__ import annotations

import logging
import os
import random

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError

logger = logging.getLogger(__name__)

TRANSIENT_ERRORS = (OperationalError, InterfaceError, ConnectionError, TimeoutError)
MAX_RETRIES = 5
# A chunk that killed its worker this many times (out of memory, a crash) is given up on rather
# than handed to the next worker forever.
MAX_CHUNK_ATTEMPTS = 5


def backoff_seconds(retries: int) -> float:
    """5, 10, 20, 40, 80 s (capped at 10 min), with jitter so retries of many chunks spread out."""
    return min(600.0, 5.0 * 2**retries) * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security


@shared_task(acks_late=True, reject_on_worker_lost=True, autoretry_for=(ConnectionError,), retry_backoff=True,
             max_retries=5)
def rescore_customers(*, customer_ids: list[str], reason: str = "") -> int:
    """Score stored customers again after their data changed. Safe to repeat: it only adds history."""
    from predictions.services import predictions_score_stored

    return predictions_score_stored(customer_ids=customer_ids)


@shared_task(acks_late=True, reject_on_worker_lost=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=5,
             retry_backoff_max=600, retry_jitter=True, max_retries=MAX_RETRIES, soft_time_limit=1800, time_limit=1900)
def batch_job_start(*, job_id: int) -> int:
    """Plan a job into chunks and send them; returns how many chunks were sent."""
    from predictions.batch_jobs.plan import batch_job_start as start

    return len(start(job_id=job_id))


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=MAX_RETRIES,
             soft_time_limit=settings.BATCH_CHUNK_SOFT_TIME_LIMIT, time_limit=settings.BATCH_CHUNK_TIME_LIMIT)
def batch_job_score_chunk(self, *, chunk_id: int) -> dict:  # type: ignore[no-untyped-def]
    """Score one chunk. Errors that are not transient fail the chunk (its rows count as failed)."""
    from predictions.batch_jobs.score import batch_chunk_fail, batch_chunk_score
    from predictions.models import BatchChunk

    attempts = BatchChunk.objects.filter(pk=chunk_id).values_list("attempts", flat=True).first()
    if attempts is not None and attempts >= MAX_CHUNK_ATTEMPTS:
        batch_chunk_fail(chunk_id=chunk_id, error=f"Gave up after {attempts} attempts that did not finish.")
        return {"chunk_id": chunk_id, "status": "failed"}
    worker = f"{self.request.hostname or 'local'}:{os.getpid()}"
    try:
        result = batch_chunk_score(chunk_id=chunk_id, worker=worker)
    except TRANSIENT_ERRORS as exc:
        if self.request.retries >= MAX_RETRIES:
            batch_chunk_fail(chunk_id=chunk_id, error=f"{type(exc).__name__} after {MAX_RETRIES} retries: {exc}")
            return {"chunk_id": chunk_id, "status": "failed"}
        logger.warning("Chunk %s: transient error, retrying: %s", chunk_id, exc)
        raise self.retry(exc=exc, countdown=backoff_seconds(self.request.retries)) from exc
    except SoftTimeLimitExceeded:
        batch_chunk_fail(chunk_id=chunk_id, error=f"Took longer than {settings.BATCH_CHUNK_SOFT_TIME_LIMIT} s.")
        return {"chunk_id": chunk_id, "status": "failed"}
    except Exception as exc:  # recorded on the chunk; the job goes on with the others
        logger.exception("Chunk %s failed", chunk_id)
        batch_chunk_fail(chunk_id=chunk_id, error=f"{type(exc).__name__}: {exc}")
        return {"chunk_id": chunk_id, "status": "failed"}
    if result is None:
        return {"chunk_id": chunk_id, "status": "skipped"}
    return {"chunk_id": chunk_id, "status": "done", "scored": result.scored, "failed": result.failed}


@shared_task(acks_late=True, reject_on_worker_lost=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=5,
             retry_backoff_max=600, retry_jitter=True, max_retries=MAX_RETRIES, soft_time_limit=900, time_limit=1000)
def batch_job_finish(*, job_id: int) -> str:
    """Close a job whose chunks have all run; returns its final status."""
    from predictions.batch_jobs.finish import batch_job_finish as finish

    return finish(job_id=job_id).status


@shared_task(acks_late=True, reject_on_worker_lost=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=30,
             max_retries=3)
def batch_jobs_nightly() -> int | None:
    """The scheduled full scoring; skipped while the previous one still runs or no model is active."""
    from modelregistry.loader import ModelUnavailable
    from predictions.batch_jobs.operator_actions import batch_job_schedule_full

    try:
        job = batch_job_schedule_full()
    except ModelUnavailable as exc:
        logger.error("Nightly scoring skipped: %s", exc)
        return None
    return job.pk if job is not None else None


@shared_task(acks_late=True, reject_on_worker_lost=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=10,
             max_retries=3, soft_time_limit=120, time_limit=150)
def batch_jobs_watchdog() -> dict:
    """Re-send lost chunks and finish jobs whose finish was lost (see predictions.batch_jobs)."""
    from predictions.batch_jobs.watchdog import batch_jobs_watchdog as watchdog

    return watchdog()


@shared_task(acks_late=True, reject_on_worker_lost=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=30,
             max_retries=3)
def predictions_purge_expired() -> int:
    """Beat: delete predictions older than PREDICTION_RETENTION_DAYS."""
    from predictions.retention import predictions_purge_expired as purge

    return purge()


@shared_task(acks_late=True, reject_on_worker_lost=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=30,
             max_retries=3, soft_time_limit=600, time_limit=660)
def prediction_partitions_ensure() -> list[str]:
    """Beat: create this month's and the next PREDICTION_PARTITIONS_AHEAD months' partitions (idempotent)."""
    from predictions.partitions import prediction_partitions_ensure as ensure

    return ensure()

@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=600, time_limit=660,
             autoretry_for=TRANSIENT_ERRORS, retry_backoff=5, max_retries=MAX_RETRIES)
def refresh_live_performance() -> int:
    """Recompute every version's live figures (debounced after outcomes arrive, and on a schedule)."""
    from django.core.cache import cache

    from predictions.live_performance import PENDING_KEY, live_performance_refresh

    # Cleared first, so outcomes that arrive while this runs schedule one more refresh.
    try:
        cache.delete(PENDING_KEY)
    except Exception:
        logger.warning("cache unavailable clearing the live performance flag", exc_info=True)
    return live_performance_refresh()
