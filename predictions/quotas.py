"""Per-department quotas on batch scoring jobs: how many may be queued or running, and created per hour.

One key once created 141 whole-base jobs in 9 minutes. ``batch_job_slot`` checks both limits
under a lock on the department's row and holds it while the job is created, so two requests
at the same moment cannot both take the last slot. Jobs without a department (the nightly
schedule, the system) are not counted against anyone.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from accounts.models import Department
from accounts.services import Actor
from predictions.models import BatchJob, BatchJobStatus

ACTIVE_STATUSES = (BatchJobStatus.QUEUED, BatchJobStatus.RUNNING)
# A queued or running job usually takes minutes; ask again after this long.
ACTIVE_RETRY_AFTER_SECONDS = 60
_HOUR = timedelta(hours=1)


class JobQuotaExceeded(Exception):
    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


def batch_job_quota_check(*, department_id: int) -> None:
    """JobQuotaExceeded when the department is at either limit (call under batch_job_slot's lock)."""
    jobs = BatchJob.objects.filter(department_id=department_id)
    most_active = settings.BATCH_JOBS_MAX_ACTIVE_PER_DEPARTMENT
    if most_active > 0:
        active = jobs.filter(status__in=ACTIVE_STATUSES).count()
        if active >= most_active:
            raise JobQuotaExceeded(
                f"The department has {active} batch jobs queued or running; at most {most_active} at once "
                "(BATCH_JOBS_MAX_ACTIVE_PER_DEPARTMENT). Retry when one has finished.",
                ACTIVE_RETRY_AFTER_SECONDS,
            )
    per_hour = settings.BATCH_JOBS_MAX_PER_HOUR_PER_DEPARTMENT
    if per_hour > 0:
        now = timezone.now()
        recent = jobs.filter(created_at__gt=now - _HOUR)
        count = recent.count()
        if count >= per_hour:
            oldest = recent.aggregate(oldest=Min("created_at"))["oldest"] or now
            wait = max(1, math.ceil((oldest + _HOUR - now).total_seconds()))
            raise JobQuotaExceeded(
                f"The department has created {count} batch jobs in the last hour; at most {per_hour} "
                "(BATCH_JOBS_MAX_PER_HOUR_PER_DEPARTMENT).",
                wait,
            )


@contextlib.contextmanager
def batch_job_slot(actor: Actor) -> Iterator[None]:
    """A transaction in which the actor's department is within its job quotas; create the job inside it."""
    with transaction.atomic():
        if actor.department_id is not None:
            Department.objects.select_for_update().filter(pk=actor.department_id).exists()
            batch_job_quota_check(department_id=actor.department_id)
        yield
