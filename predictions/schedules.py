"""The platform's own beat schedules, written to django-celery-beat from settings.

Settings (environment) are the source of truth: ``manage.py setup_schedules`` (also run after
every ``migrate``) creates or updates one PeriodicTask per entry below, with the crontab of its
setting, and disables the ones set to "off". Beat (DatabaseScheduler) picks changes up by itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class Schedule:
    name: str
    task: str
    setting: str
    queue: str
    description: str


SCHEDULES = (
    Schedule("predictions: nightly full scoring", "predictions.tasks.batch_jobs_nightly", "BATCH_SCORING_CRON",
             "batch", "Scores every stored customer; customers whose risk level rose are flagged for campaigns."),
    Schedule("predictions: batch job watchdog", "predictions.tasks.batch_jobs_watchdog", "BATCH_WATCHDOG_CRON",
             "batch", "Re-sends chunks whose messages were lost and finishes jobs whose finish was lost."),
    # Created every five minutes by customers' migration 0003; the setting now rules it.
    Schedule("ingestion: resume stale runs", "customers.tasks.ingestion_runs_resume_stale",
             "INGESTION_WATCHDOG_CRON", "ingestion",
             "Queue again the ingestion runs whose worker stopped reporting (killed, lost message)."),
    Schedule("modelregistry: monthly retraining", "modelregistry.tasks.retrain_scheduled", "RETRAIN_CRON",
             "training", "Retrains on the stored customers and outcomes; the promotion policy applies."),
    Schedule("modelregistry: retraining triggers", "modelregistry.tasks.evaluate_retraining_triggers",
             "RETRAIN_EVALUATION_CRON", "training",
             "Measures drift (PSI), live accuracy and mean confidence; retrains when one is beyond its threshold."),
    Schedule("predictions: retention", "predictions.tasks.predictions_purge_expired", "PREDICTION_RETENTION_CRON",
             "batch", "Deletes predictions older than PREDICTION_RETENTION_DAYS."),
    Schedule("customers: quarantine retention", "customers.tasks.quarantine_purge_expired",
             "QUARANTINE_RETENTION_CRON", "ingestion",
             "Deletes quarantined rows older than QUARANTINE_RETENTION_DAYS."),

    Schedule("predictions: live performance", "predictions.tasks.refresh_live_performance", "LIVE_PERFORMANCE_CRON",
             "batch", "Recomputes each version's realized and CBPE-estimated figures (outcomes also trigger it)."),
)

OFF = {"", "off", "none", "disabled"}


def parse_cron(line: str, *, setting: str = "") -> dict[str, str] | None:
    """A five-field cron line (minute hour day-of-month month day-of-week) as crontab fields; None for off."""
    if line.strip().lower() in OFF:
        return None
    fields = line.split()
    if len(fields) != 5:
        raise ImproperlyConfigured(f"{setting or 'cron'} must have five fields (m h dom mon dow); got {line!r}")
    from celery.schedules import crontab

    minute, hour, day_of_month, month_of_year, day_of_week = fields
    try:
        crontab(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
                day_of_week=day_of_week)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{setting or 'cron'} {line!r} is not a valid crontab: {exc}") from exc
    return {"minute": minute, "hour": hour, "day_of_month": day_of_month, "month_of_year": month_of_year,
            "day_of_week": day_of_week}


def schedules_setup(*, using: str = "default") -> list[tuple[str, str]]:
    """Create or update the PeriodicTask rows; returns (name, crontab or 'off') for each."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

    done = []
    for entry in SCHEDULES:
        line = getattr(settings, entry.setting)
        fields = parse_cron(line, setting=entry.setting)
        if fields is None:
            PeriodicTask.objects.using(using).filter(name=entry.name).update(enabled=False)
            done.append((entry.name, "off"))
            continue
        crontab, _ = CrontabSchedule.objects.using(using).get_or_create(**fields, timezone="UTC")
        task = PeriodicTask.objects.using(using).filter(name=entry.name).first() or PeriodicTask(name=entry.name)
        task.task = entry.task
        task.crontab = crontab
        task.interval = task.solar = task.clocked = None
        task.queue = entry.queue
        task.description = entry.description
        task.enabled = True
        task.save(using=using)
        done.append((entry.name, " ".join(line.split())))
    PeriodicTasks.update_changed(using=using)
    return done
