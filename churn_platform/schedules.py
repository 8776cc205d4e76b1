"""The platform's own beat schedules, written to django-celery-beat from settings.

The wiring holds the table because it names every app's tasks.

Settings (environment) are the source of truth: ``manage.py setup_schedules`` (also run after
every ``migrate``) creates or updates one PeriodicTask per entry below, with the crontab of its
setting, and disables the ones set to "off". Beat (DatabaseScheduler) picks changes up by itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from churn_infra.schedules import parse_cron as cron_fields
from churn_infra.schedules import periodic_task_write


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
             "batch", "Drops the monthly partitions and deletes the predictions older than PREDICTION_RETENTION_DAYS."),
    Schedule("predictions: partitions ahead", "predictions.tasks.prediction_partitions_ensure",
             "PREDICTION_PARTITIONS_CRON", "batch",
             "Creates this month's and the next PREDICTION_PARTITIONS_AHEAD months' prediction partitions."),
    Schedule("customers: quarantine retention", "customers.tasks.quarantine_purge_expired",
             "QUARANTINE_RETENTION_CRON", "ingestion",
             "Deletes quarantined rows older than QUARANTINE_RETENTION_DAYS."),

    Schedule("predictions: live performance", "predictions.tasks.refresh_live_performance", "LIVE_PERFORMANCE_CRON",
             "batch", "Recomputes each version's realized and CBPE-estimated figures (outcomes also trigger it)."),
    # The next three were created by campaigns' migrations 0002, 0003 and 0008; the settings now rule them.
    Schedule("campaigns: close ended campaigns", "campaigns.tasks.close_ended_campaigns", "CAMPAIGN_CLOSE_CRON",
             "interactive", "Closes the campaigns whose end date has passed."),
    Schedule("campaigns: refresh dashboard population charts", "campaigns.tasks.refresh_population_stats",
             "POPULATION_STATS_CRON", "interactive",
             "Recomputes the staff dashboard's risk-level and new-high-risk charts."),
    Schedule("campaigns: daily digest e-mails", "campaigns.tasks.send_daily_digests", "DIGEST_CRON", "interactive",
             "Sends each staff member who wants one the digest of their follow-up work."),
)

def parse_cron(line: str, *, setting: str = "") -> dict[str, str] | None:
    """A schedule setting's cron line as crontab fields (churn_infra.schedules); None for off."""
    try:
        return cron_fields(line)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{setting or 'cron'} {exc}") from exc


def schedules_setup(*, using: str = "default") -> list[tuple[str, str]]:
    """Create or update the PeriodicTask rows; returns (name, crontab or 'off') for each."""
    from django_celery_beat.models import PeriodicTask, PeriodicTasks

    done = []
    for entry in SCHEDULES:
        line = getattr(settings, entry.setting)
        fields = parse_cron(line, setting=entry.setting)
        if fields is None:
            PeriodicTask.objects.using(using).filter(name=entry.name).update(enabled=False)
            done.append((entry.name, "off"))
            continue
        periodic_task_write(
            name=entry.name, task=entry.task, cron=fields, queue=entry.queue, description=entry.description, using=using
        )
        done.append((entry.name, " ".join(line.split())))
    PeriodicTasks.update_changed(using=using)
    return done
