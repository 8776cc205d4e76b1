"""Tasks that only the ops tests' real Celery worker loads (celery worker --include tests.ops.worker_tasks)."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger("tests.ops.worker_tasks")


@shared_task(name="tests.ops.echo", acks_late=True)
def echo(value: str) -> str:
    logger.info("echo task ran with %s", value)
    return value


@shared_task(name="tests.ops.fail", acks_late=True)
def fail(value: str) -> None:
    raise ValueError(f"failing on purpose: {value}")
