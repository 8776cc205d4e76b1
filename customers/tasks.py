"""Celery tasks of the customers app (queue "ingestion"). Each takes an id and calls one service."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError


class IngestionRunTask(Task):
    """Marks the run failed when the task gives up (retries exhausted, time limit), so no run stays "running"."""

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        from customers.ingestion.services import ingestion_run_mark_failed

        run_id = args[0] if args else kwargs.get("run_id")
        if run_id is not None:
            ingestion_run_mark_failed(run_id=run_id, message=f"The worker gave up: {type(exc).__name__}: {exc}")


@shared_task(
    bind=True,
    base=IngestionRunTask,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def ingestion_run_process(self: Task, run_id: str) -> str | None:
    """Process one ingestion run; a second delivery finds it held or finished and does nothing."""
    from customers.ingestion.services import ingestion_run_execute

    run = ingestion_run_execute(run_id=run_id)
    return run.status if run is not None else None


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=5,
    retry_backoff_max=600,
    max_retries=5,
)
def data_source_run(source_id: int) -> str | None:
    """A data source's scheduled pull (Celery beat); disabled sources are skipped."""
    from customers.ingestion.services import data_source_run_now
    from customers.models import DataSource

    if not DataSource.objects.filter(pk=source_id, enabled=True).exists():
        return None
    run = data_source_run_now(source_id=source_id)
    return str(run.pk) if run is not None else None


@shared_task(acks_late=True)
def ingestion_runs_resume_stale() -> list[str]:
    """Re-queue runs whose worker died or whose message was lost (scheduled every few minutes)."""
    from customers.ingestion.services import ingestion_runs_resume_stale as resume

    return resume()


@shared_task(acks_late=True, reject_on_worker_lost=True, autoretry_for=(OperationalError, InterfaceError),
             retry_backoff=30, max_retries=3)
def quarantine_purge_expired() -> int:
    """Beat: delete quarantined rows older than QUARANTINE_RETENTION_DAYS."""
    from customers.ingestion.retention import quarantined_rows_purge_expired

    return quarantined_rows_purge_expired()
