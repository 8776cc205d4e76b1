"""Sending a job's work to the workers: the start, the chunks (one Celery group), the finish."""

from __future__ import annotations

from collections.abc import Sequence


def send_start(job_id: int) -> None:
    from predictions.tasks import batch_job_start

    batch_job_start.delay(job_id=job_id)


def send_chunks(chunk_ids: Sequence[int]) -> None:
    from celery import group

    from predictions.tasks import batch_job_score_chunk

    group(batch_job_score_chunk.si(chunk_id=pk) for pk in chunk_ids).apply_async()


def send_finish(job_id: int) -> None:
    from predictions.tasks import batch_job_finish

    batch_job_finish.delay(job_id=job_id)
