"""The one cron validator and the one beat-schedule writer.

Beat (django-celery-beat's DatabaseScheduler) reads its schedules from the database. The
platform's own schedules (churn_platform.schedules, from settings) and each scheduled data source
(customers.ingestion) are written here: a five-field cron line in UTC, one PeriodicTask by name.
"""

from __future__ import annotations

import json
from typing import Any

from celery.schedules import crontab

# A schedule setting with one of these values is off.
OFF = {"", "off", "none", "disabled"}
CRON_HELP = 'a cron expression: minute hour day-of-month month day-of-week, e.g. "0 2 * * *"'


def parse_cron(line: str) -> dict[str, str] | None:
    """A five-field cron line as CrontabSchedule fields; None for off. Raises ValueError saying why."""
    if line.strip().lower() in OFF:
        return None
    parts = line.split()
    if len(parts) != 5:
        raise ValueError(f"must have five fields (minute hour day-of-month month day-of-week); got {line!r}")
    fields = dict(zip(("minute", "hour", "day_of_month", "month_of_year", "day_of_week"), parts, strict=True))
    try:
        crontab(**fields)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{line!r} is not a valid crontab: {exc}") from exc
    return fields


def periodic_task_write(
    *,
    name: str,
    task: str,
    cron: dict[str, str],
    description: str,
    queue: str | None = None,
    args: list[Any] | None = None,
    enabled: bool = True,
    using: str = "default",
) -> None:
    """Create or update the PeriodicTask ``name`` to run ``task`` on the cron fields (UTC)."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    schedule, _ = CrontabSchedule.objects.using(using).get_or_create(**cron, timezone="UTC")
    periodic = PeriodicTask.objects.using(using).filter(name=name).first() or PeriodicTask(name=name)
    periodic.task = task
    periodic.crontab = schedule
    periodic.interval = periodic.solar = periodic.clocked = None
    periodic.queue = queue
    periodic.args = json.dumps(args or [])
    periodic.description = description
    periodic.enabled = enabled
    periodic.save(using=using)
