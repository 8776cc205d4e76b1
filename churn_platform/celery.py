"""The Celery application. Workers: `celery -A churn_platform worker -Q interactive,batch,training,ingestion`.

Signal handlers carry the request id of the web request that started a task into the task's logs,
count task outcomes and run times (churn_celery_tasks_total, churn_celery_task_duration_seconds),
and serve the worker's metrics and probes on CELERY_METRICS_PORT (churn_platform.worker_http).
With the prefork pool each child process writes its values under PROMETHEUS_MULTIPROC_DIR and
the main process sums them.
"""

from __future__ import annotations

import logging
import os
import time
from contextvars import Token
from typing import Any

from celery import Celery, bootsteps
from celery.signals import (
    before_task_publish,
    task_failure,
    task_internal_error,
    task_postrun,
    task_prerun,
    task_rejected,
    task_retry,
    task_revoked,
    task_success,
    task_unknown,
    worker_init,
    worker_process_shutdown,
    worker_ready,
)
from django.conf import settings
from django.core.cache import cache

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "churn_platform.settings")

app = Celery("churn_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger(__name__)

DEFAULT_METRICS_PORT = 9808
# task id -> (start time, request-id token to restore); per process, a task runs in one process.
_running: dict[str, tuple[float, Token[str | None]]] = {}


@before_task_publish.connect
def _attach_request_id(headers: dict | None = None, **_: object) -> None:
    """Carry the current request id into the task so its logs can be joined to the request."""
    from churn_infra.logging import current_request_id

    request_id = current_request_id()
    if headers is not None and request_id and "request_id" not in headers:
        headers["request_id"] = request_id


@task_prerun.connect
def _task_started(task_id: str | None = None, task: Any = None, **_: object) -> None:
    from churn_infra.logging import bind_request_id, current_request_id

    request = getattr(task, "request", None)
    request_id = getattr(request, "request_id", None) or (getattr(request, "headers", None) or {}).get("request_id")
    if getattr(request, "is_eager", False):
        # An eager task runs inside the request that started it: keep that request's id.
        request_id = current_request_id() or request_id
    token = bind_request_id(request_id or f"task-{task_id or ''}")
    if task_id:
        _running[task_id] = (time.monotonic(), token)


@task_postrun.connect
def _task_finished(task_id: str | None = None, task: Any = None, **_: object) -> None:
    from churn_infra.logging import reset_request_id
    from churn_infra.metrics import CELERY_TASK_DURATION

    started = _running.pop(task_id or "", None)
    if started is None:
        return
    CELERY_TASK_DURATION.labels(task=_task_name(task)).observe(time.monotonic() - started[0])
    reset_request_id(started[1])


def _task_name(task: Any) -> str:
    return str(getattr(task, "name", None) or task or "unknown")


def _count(outcome: str, sender: Any) -> None:
    from churn_infra.metrics import CELERY_TASKS

    CELERY_TASKS.labels(task=_task_name(sender), outcome=outcome).inc()


@task_success.connect
def _task_succeeded(sender: Any = None, **_: object) -> None:
    _count("success", sender)


@task_failure.connect
def _task_failed(sender: Any = None, **_: object) -> None:
    _count("failure", sender)


@task_retry.connect
def _task_retried(sender: Any = None, **_: object) -> None:
    _count("retry", sender)


@task_revoked.connect
def _task_revoked(sender: Any = None, request: Any = None, **_: object) -> None:
    _count("revoked", sender or getattr(request, "task", None))


@task_internal_error.connect
def _task_internal_error(sender: Any = None, **_: object) -> None:
    _count("internal_error", sender)


@task_rejected.connect
def _task_rejected(message: Any = None, **_: object) -> None:
    headers = getattr(message, "headers", None) or {}
    _count("rejected", headers.get("task"))


@task_unknown.connect
def _task_unknown(name: str | None = None, **_: object) -> None:
    _count("unknown", name)


# --- worker metrics endpoint ----------------------------------------------------------------


@worker_init.connect
def _reset_multiprocess_dir(**_: object) -> None:
    """Start from an empty PROMETHEUS_MULTIPROC_DIR: files of an earlier run would be summed in.

    Give each worker (container, pod) its own directory; never share it with gunicorn's.
    """
    from churn_platform.multiprocess import reset_multiprocess_dir

    reset_multiprocess_dir()


@worker_ready.connect
def _serve_worker_http(sender: Any = None, **_: object) -> None:
    """Metrics, liveness and readiness of this worker on CELERY_METRICS_PORT (0 turns it off)."""
    port = int(os.environ.get("CELERY_METRICS_PORT", DEFAULT_METRICS_PORT))
    if not port:
        return
    from churn_platform.collectors import multiprocess_enabled, scrape_registry
    from churn_platform.worker_http import serve

    if not multiprocess_enabled():
        logger.warning(
            "PROMETHEUS_MULTIPROC_DIR is not set: task metrics of prefork children will be missing from :%s", port
        )
    # Loopback unless the deployment opens it (deploy/ sets 0.0.0.0 so Prometheus can scrape);
    # /metrics also checks METRICS_ALLOWED_NETWORKS and METRICS_TOKEN, like the web /metrics.
    address = os.environ.get("CELERY_METRICS_ADDRESS", "127.0.0.1")
    try:
        serve(app, scrape_registry(app_state=False), address=address, port=port)
    except OSError as exc:  # a second worker on the same host: it still works, unscraped
        logger.warning("Worker metrics and probes not served on %s:%s: %s", address, port, exc)
        return
    logger.info("Serving worker metrics and probes on %s:%s", address, port)


@worker_process_shutdown.connect
def _forget_child(pid: int | None = None, **_: object) -> None:
    from churn_platform.multiprocess import mark_dead

    mark_dead(pid or os.getpid())


# --- watchdogs without beat -----------------------------------------------------------------

# The tasks that take over work of a dead worker, by the queue they run on.
WATCHDOG_TASKS = {
    "batch": "predictions.tasks.batch_jobs_watchdog",
    "ingestion": "customers.tasks.ingestion_runs_resume_stale",
}


class Watchdogs(bootsteps.StartStopStep):
    """Each worker sends the watchdog tasks of the queues it consumes, shortly after it starts and
    then every WORKER_WATCHDOG_SECONDS, so a dead worker's batch chunks and ingestion runs are
    taken over even where beat does not run. With several workers (and beat) the sends are
    deduplicated through the cache; the watchdogs themselves are safe to run twice."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.trefs: list[Any] = []

    def start(self, worker: Any) -> None:
        interval = settings.WORKER_WATCHDOG_SECONDS
        consumed = set(worker.app.amqp.queues.consume_from or ())
        tasks = [(queue, name) for queue, name in WATCHDOG_TASKS.items() if queue in consumed]
        if not interval or not tasks:
            return
        self.trefs.append(worker.timer.call_after(min(5.0, interval), self.send, (tasks, interval)))
        self.trefs.append(worker.timer.call_repeatedly(interval, self.send, (tasks, interval)))

    def stop(self, worker: Any) -> None:
        for tref in self.trefs:
            tref.cancel()
        self.trefs.clear()

    @staticmethod
    def send(tasks: list[tuple[str, str]], interval: float) -> None:
        for queue, name in tasks:
            try:
                # Another worker sent it within this interval: skip. Cache down: send anyway.
                if not cache.add(f"worker-watchdog:{name}", 1, max(1, int(interval * 0.8))):
                    continue
            except Exception:  # noqa: S110 - the cache is optional here; the send below is not
                pass
            try:
                app.send_task(name, queue=queue)
            except Exception as exc:
                logger.warning("Could not send the %s watchdog: %s", name, exc)


app.steps["worker"].add(Watchdogs)
