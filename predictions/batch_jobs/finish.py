"""Finishing a job: final status, per-worker throughput, the results file, the audit entry, the signal."""

from __future__ import annotations

import contextlib
import logging
import os

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from accounts.services import SYSTEM, audit_record
from churn_infra import metrics
from predictions.batch_jobs.common import OPEN_CHUNK_STATUSES
from predictions.batch_jobs.plan import part_name
from predictions.batch_jobs.results import write_results_file
from predictions.models import BatchChunkStatus, BatchJob, BatchJobScope, BatchJobStatus
from predictions.signals import batch_job_finished

logger = logging.getLogger(__name__)


def batch_job_finish(*, job_id: int) -> BatchJob:
    """Close a job whose chunks have all run: status, throughput per worker, results file, audit, signal."""
    with transaction.atomic():
        job = BatchJob.objects.select_for_update().get(pk=job_id)
        if job.is_finished or job.chunks.filter(status__in=OPEN_CHUNK_STATUSES).exists():
            return job
        now = timezone.now()
        if job.failed == 0:
            job.status = BatchJobStatus.SUCCEEDED
        elif job.scored:
            job.status = BatchJobStatus.PARTIALLY_SUCCEEDED
        else:
            job.status = BatchJobStatus.FAILED
            job.error = job.error or "No customer could be scored."
        job.total = job.scored + job.failed
        job.started_at = job.started_at or now
        job.finished_at = now
        job.duration_seconds = round((now - job.started_at).total_seconds(), 3)
        job.details = {**job.details, "workers": _worker_figures(job)}
        if settings.BATCH_JOB_OUTPUT_FILE and job.scored:
            try:
                write_results_file(job)
            except OSError as exc:
                # The predictions are stored; results/ streams them from the database instead.
                logger.exception("Batch job %s: results file not written", job.pk)
                job.error = f"The results file could not be written ({exc}); results/ reads the database."
        job.save()
        if job.scope == BatchJobScope.FILE:
            _delete_parts(job)
        audit_record(
            actor=SYSTEM,
            action="batch_job.finish",
            obj=job,
            details={
                "status": job.status,
                "total": job.total,
                "scored": job.scored,
                "failed": job.failed,
                "risk_increased": job.risk_increased,
                "duration_seconds": job.duration_seconds,
            },
        )
        transaction.on_commit(lambda: batch_job_finished.send(sender=BatchJob, job=job))
    metrics.BATCH_JOB_DURATION.observe(job.duration_seconds or 0.0)
    logger.info(
        "Batch job %s %s: %s scored, %s failed, %s risk increased in %.1f s",
        job.pk,
        job.status,
        job.scored,
        job.failed,
        job.risk_increased,
        job.duration_seconds or 0.0,
    )
    return job


def _delete_parts(job: BatchJob) -> None:
    """The uploaded file's parts are only needed while the chunks run; the upload itself stays."""
    for name in job.chunks.exclude(part_name="").values_list("part_name", flat=True):
        if default_storage.exists(name):
            default_storage.delete(name)
    with contextlib.suppress(NotImplementedError, OSError):
        os.rmdir(default_storage.path(part_name(job, 0)).rsplit(os.sep, 1)[0])


def _worker_figures(job: BatchJob) -> dict[str, dict[str, float]]:
    """Rows, busy seconds and rows per busy second of each worker process: how the job scaled."""
    figures: dict[str, dict[str, float]] = {}
    rows = job.chunks.filter(status=BatchChunkStatus.DONE).values_list("worker", "scored", "duration_seconds")
    for worker, scored, seconds in rows:
        entry = figures.setdefault(worker or "unknown", {"chunks": 0, "rows": 0, "busy_seconds": 0.0})
        entry["chunks"] += 1
        entry["rows"] += scored
        entry["busy_seconds"] += seconds or 0.0
    for entry in figures.values():
        entry["busy_seconds"] = round(entry["busy_seconds"], 3)
        entry["rows_per_second"] = round(entry["rows"] / entry["busy_seconds"], 1) if entry["busy_seconds"] else 0.0
    return figures
