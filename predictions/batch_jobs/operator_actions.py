"""What operators do to jobs: cancel, resume, and the scheduled full scoring."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from accounts.services import SYSTEM, Actor, audit_record
from predictions.batch_jobs.common import BatchJobStateError
from predictions.batch_jobs.create import batch_job_create
from predictions.batch_jobs.plan import batch_job_start
from predictions.models import FINISHED_JOB_STATUSES, BatchJob, BatchJobOrigin, BatchJobScope, BatchJobStatus

logger = logging.getLogger(__name__)


@transaction.atomic
def batch_job_cancel(*, job_id: int, actor: Actor) -> BatchJob:
    """Stop a job: chunks not started yet are skipped; chunks already written stay."""
    job = BatchJob.objects.select_for_update().get(pk=job_id)
    if job.is_finished:
        raise BatchJobStateError(f"Job {job.pk} is already {job.status}.")
    now = timezone.now()
    job.status = BatchJobStatus.CANCELLED
    job.finished_at = now
    job.duration_seconds = round((now - (job.started_at or job.created_at)).total_seconds(), 3)
    job.save(update_fields=["status", "finished_at", "duration_seconds", "updated_at"])
    audit_record(actor=actor, action="batch_job.cancel", obj=job, details={"scored": job.scored})
    return job


def batch_job_resume(*, job_id: int, actor: Actor) -> list[int]:
    """Send a running job's unfinished chunks again (after an outage); duplicates are harmless."""
    job = BatchJob.objects.get(pk=job_id)
    if job.is_finished:
        raise BatchJobStateError(f"Job {job.pk} is already {job.status}.")
    sent = batch_job_start(job_id=job_id)
    with transaction.atomic():
        audit_record(actor=actor, action="batch_job.resume", obj=job, details={"chunks": len(sent)})
    return sent


def batch_job_schedule_full(*, origin: str = BatchJobOrigin.SCHEDULE, actor: Actor = SYSTEM) -> BatchJob | None:
    """Start the nightly full scoring, unless a full job of the same origin is still queued or running."""
    busy = BatchJob.objects.filter(scope=BatchJobScope.ALL, origin=origin).exclude(status__in=FINISHED_JOB_STATUSES)
    if busy.exists():
        logger.warning("Full scoring not started: job %s is still %s", busy.first().pk, busy.first().status)
        return None
    return batch_job_create(scope=BatchJobScope.ALL, actor=actor, origin=origin)
