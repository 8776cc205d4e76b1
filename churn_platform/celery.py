"""The Celery application. Workers: `celery -A churn_platform worker -Q interactive,batch,training,ingestion`."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import before_task_publish, task_prerun, task_postrun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "churn_platform.settings")

app = Celery("churn_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@before_task_publish.connect
def _attach_request_id(headers: dict | None = None, **_: object) -> None:
    """Carry the current request id into the task so its logs can be joined to the request."""
    from churn_platform.logging import current_request_id

    request_id = current_request_id()
    if headers is not None and request_id and "request_id" not in headers:
        headers["request_id"] = request_id


@task_prerun.connect
def _restore_request_id(task: object = None, **_: object) -> None:
    from churn_platform.logging import set_request_id

    request = getattr(task, "request", None)
    request_id = getattr(request, "request_id", None) or (getattr(request, "headers", None) or {}).get("request_id")
    set_request_id(request_id or f"task-{getattr(request, 'id', '') or ''}")


@task_postrun.connect
def _clear_request_id(**_: object) -> None:
    from churn_platform.logging import set_request_id

    set_request_id(None)
