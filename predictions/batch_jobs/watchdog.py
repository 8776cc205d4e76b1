"""The watchdog: re-sends chunks whose messages were lost and finishes jobs whose last follow-up was lost."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from predictions.batch_jobs.common import OPEN_CHUNK_STATUSES
from predictions.batch_jobs.dispatch import send_chunks, send_finish, send_start
from predictions.models import BatchChunk, BatchChunkStatus, BatchJob, BatchJobStatus

logger = logging.getLogger(__name__)


def batch_jobs_watchdog(*, now: datetime | None = None, queue_depth: int | None = None) -> dict[str, int]:
    """Re-send chunks whose messages were lost, finish jobs whose finish was lost, restart lost starts.

    A chunk is lost when it is marked running, nobody holds its lock, and it started longer ago
    than BATCH_CHUNK_STALE_SECONDS (its worker died and Redis has not handed the message back
    yet), or when it is still pending that long after dispatch while the batch queue is empty.
    """
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.BATCH_CHUNK_STALE_SECONDS)
    if queue_depth is None:
        from predictions.operations import queue_depths

        depths = queue_depths()
        queue_depth = depths.get("batch") if depths is not None else None
    summary = {"chunks_resent": 0, "jobs_finished": 0, "jobs_restarted": 0}
    # A queued job behind a busy batch queue is waiting, not lost.
    queued = BatchJob.objects.filter(status=BatchJobStatus.QUEUED, created_at__lt=stale_before)
    for job_id in queued.values_list("pk", flat=True) if queue_depth in (0, None) else ():
        send_start(job_id)
        summary["jobs_restarted"] += 1
    for job in BatchJob.objects.filter(status=BatchJobStatus.RUNNING):
        with transaction.atomic():
            # SKIP LOCKED: a chunk being scored holds its lock and is not lost.
            open_chunks = job.chunks.select_for_update(skip_locked=True).filter(status__in=OPEN_CHUNK_STATUSES)
            lost = [
                c.pk
                for c in open_chunks.only("pk", "status", "started_at", "dispatched_at")
                if (c.status == BatchChunkStatus.RUNNING and c.started_at and c.started_at < stale_before)
                or (
                    c.status == BatchChunkStatus.PENDING
                    and queue_depth == 0
                    and (c.dispatched_at is None or c.dispatched_at < stale_before)
                )
            ]
            if lost:
                BatchChunk.objects.filter(pk__in=lost).update(dispatched_at=now, updated_at=now)
                transaction.on_commit(lambda lost=lost: send_chunks(lost))
                summary["chunks_resent"] += len(lost)
        if not job.chunks.filter(status__in=OPEN_CHUNK_STATUSES).exists():
            send_finish(job.pk)
            summary["jobs_finished"] += 1
    if any(summary.values()):
        logger.warning("Batch watchdog: %s", summary)
    return summary
