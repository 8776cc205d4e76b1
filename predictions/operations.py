"""What the workers are doing: queue depths, live workers, running jobs and retraining runs.

Read by ``manage.py worker_status``, the admin's worker status page and the batch watchdog.
Queue depths are a few LLENs on the Redis broker; the live workers answer Celery's ``inspect``
broadcast within a second or are reported as not answering.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import current_app
from django.conf import settings

from churn_infra.queues import queue_depths as read_queue_depths
from predictions.models import BatchChunkStatus, BatchJob, BatchJobStatus

logger = logging.getLogger(__name__)


def queue_depths() -> dict[str, int] | None:
    """Messages waiting in each queue; None when tasks run in-process, the broker is not Redis or does not answer."""
    try:
        return read_queue_depths()
    except redis.RedisError:
        logger.warning("Could not read queue depths from the broker", exc_info=True)
        return None


@dataclass
class WorkerInfo:
    name: str
    queues: list[str] = field(default_factory=list)
    active: list[str] = field(default_factory=list)


def live_workers(timeout: float = 1.0) -> list[WorkerInfo] | None:
    """Workers answering within ``timeout``, their queues and running tasks; None when eager."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return None
    try:
        # The process's Celery app (churn_platform.celery, the wiring above every app).
        inspect = current_app.control.inspect(timeout=timeout)
        queues = inspect.active_queues() or {}
        active = inspect.active() or {}
    except Exception:  # an unreachable broker is reported, not raised
        logger.warning("Could not reach the workers", exc_info=True)
        return []
    workers = []
    for name in sorted(set(queues) | set(active)):
        tasks = [f"{t.get('name')}({_short_kwargs(t.get('kwargs'))})" for t in active.get(name, [])]
        workers.append(WorkerInfo(name=name, queues=sorted(q["name"] for q in queues.get(name, [])), active=tasks))
    return workers


def _short_kwargs(kwargs: Any) -> str:
    if not isinstance(kwargs, dict):
        return ""
    return ", ".join(f"{k}={v}" for k, v in kwargs.items())[:80]


def running_jobs() -> list[dict[str, Any]]:
    """Queued and running batch jobs with their progress and chunk states."""
    out = []
    jobs = BatchJob.objects.filter(status__in=(BatchJobStatus.QUEUED, BatchJobStatus.RUNNING)).select_related(
        "model_version"
    )
    for job in jobs.order_by("created_at"):
        states = dict.fromkeys(BatchChunkStatus.values, 0)
        for status, in job.chunks.values_list("status"):
            states[status] += 1
        out.append({
            "id": job.pk, "scope": job.scope, "status": job.status, "origin": job.origin,
            "progress": job.progress, "total": job.total, "scored": job.scored, "failed": job.failed,
            "model_version": job.model_version.version, "started_at": job.started_at, "chunks": states,
            "workers": sorted(set(job.chunks.filter(status=BatchChunkStatus.RUNNING).values_list("worker", flat=True))),
        })
    return out


def running_retraining() -> list[dict[str, Any]]:
    """Queued and running retraining runs."""
    from modelregistry.models import RetrainingRun, RetrainingStatus

    runs = RetrainingRun.objects.filter(status__in=(RetrainingStatus.QUEUED, RetrainingStatus.RUNNING))
    return [
        {"id": run.pk, "trigger": run.trigger, "status": run.status, "created_at": run.created_at,
         "started_at": run.started_at}
        for run in runs.order_by("created_at")
    ]


def status_report(*, inspect_timeout: float = 1.0) -> dict[str, Any]:
    """Everything the worker status command and page show."""
    workers = live_workers(inspect_timeout)
    return {
        "eager": settings.CELERY_TASK_ALWAYS_EAGER,
        "queues": queue_depths(),
        "workers": None if workers is None else [w.__dict__ for w in workers],
        "jobs": running_jobs(),
        "retraining": running_retraining(),
    }
