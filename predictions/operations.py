"""What the workers are doing: queue depths, live workers, running jobs and retraining runs.

Read by ``manage.py worker_status``, the admin's worker status page and the batch watchdog.
Queue depths are a few LLENs on the Redis broker; the live workers answer Celery's ``inspect``
broadcast within a second or are reported as not answering.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from celery import current_app
from django.conf import settings

from predictions.models import BatchChunkStatus, BatchJob, BatchJobStatus

logger = logging.getLogger(__name__)

# kombu's Redis transport keeps each priority step of a queue in its own list:
# "<queue>" for the default step and "<queue>\x06\x16<step>" for the others.
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (0, 3, 6, 9)


def queue_names() -> list[str]:
    names = {settings.CELERY_TASK_DEFAULT_QUEUE}
    names.update(route["queue"] for route in settings.CELERY_TASK_ROUTES.values() if "queue" in route)
    return sorted(names)


def queue_depths() -> dict[str, int] | None:
    """Messages waiting in each queue; None when tasks run in-process or the broker is not Redis."""
    broker = settings.CELERY_BROKER_URL or ""
    if settings.CELERY_TASK_ALWAYS_EAGER or not broker.startswith(("redis://", "rediss://", "unix://")):
        return None
    import redis

    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "")
    try:
        client = redis.Redis.from_url(broker, socket_timeout=2, socket_connect_timeout=2)
        pipe = client.pipeline(transaction=False)
        names = queue_names()
        for name in names:
            for step in _PRIORITY_STEPS:
                pipe.llen(f"{prefix}{name}" if step == 0 else f"{prefix}{name}{_PRIORITY_SEPARATOR}{step}")
        lengths = pipe.execute()
    except redis.RedisError:
        logger.warning("Could not read queue depths from the broker", exc_info=True)
        return None
    steps = len(_PRIORITY_STEPS)
    return {name: int(sum(lengths[i * steps : (i + 1) * steps])) for i, name in enumerate(names)}


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
