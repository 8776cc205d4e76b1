"""Operating the batch side: beat schedules from settings, the admin buttons and pages, worker_status."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from churn_platform.schedules import SCHEDULES, parse_cron, schedules_setup
from predictions.models import BatchJob, BatchJobOrigin, BatchJobStatus, Prediction

pytestmark = pytest.mark.django_db

NAMES = {entry.name for entry in SCHEDULES}


def test_migrate_registered_the_beat_schedules_from_the_settings():
    tasks = {t.name: t for t in PeriodicTask.objects.filter(name__in=NAMES).select_related("crontab")}
    assert set(tasks) == NAMES
    nightly = tasks["predictions: nightly full scoring"]
    assert (nightly.task, nightly.queue, nightly.enabled) == ("predictions.tasks.batch_jobs_nightly", "batch", True)
    assert (nightly.crontab.minute, nightly.crontab.hour, str(nightly.crontab.timezone)) == ("0", "2", "UTC")
    monthly = tasks["modelregistry: monthly retraining"]
    assert (monthly.task, monthly.queue) == ("modelregistry.tasks.retrain_scheduled", "training")
    assert (monthly.crontab.minute, monthly.crontab.hour, monthly.crontab.day_of_month) == ("0", "3", "1")
    assert tasks["modelregistry: retraining triggers"].task == "modelregistry.tasks.evaluate_retraining_triggers"
    assert tasks["predictions: batch job watchdog"].task == "predictions.tasks.batch_jobs_watchdog"


def test_the_campaign_schedules_of_the_early_migrations_are_ruled_by_settings_too(settings):
    """Campaigns' migrations 0002, 0003 and 0008 created these; setup_schedules (after migrate) now owns them."""
    charts = PeriodicTask.objects.select_related("crontab").get(name="campaigns: refresh dashboard population charts")
    assert (charts.interval, charts.crontab.minute, charts.queue) == (None, "*/5", "interactive")
    settings.DIGEST_CRON = "0 7 * * 1-5"
    settings.CAMPAIGN_CLOSE_CRON = "off"
    call_command("setup_schedules", stdout=StringIO())
    digest = PeriodicTask.objects.select_related("crontab").get(name="campaigns: daily digest e-mails")
    assert digest.task == "campaigns.tasks.send_daily_digests"
    assert (digest.crontab.hour, digest.crontab.day_of_week) == ("7", "1-5")
    assert PeriodicTask.objects.get(name="campaigns: close ended campaigns").enabled is False


def test_setup_schedules_follows_changed_settings_and_is_idempotent(settings):
    settings.BATCH_SCORING_CRON = "30 1 * * 1-5"
    settings.RETRAIN_EVALUATION_CRON = "off"
    out = StringIO()
    call_command("setup_schedules", stdout=out)
    call_command("setup_schedules", stdout=StringIO())
    assert PeriodicTask.objects.filter(name__in=NAMES).count() == len(NAMES)
    nightly = PeriodicTask.objects.get(name="predictions: nightly full scoring")
    assert (nightly.crontab.minute, nightly.crontab.hour, nightly.crontab.day_of_week) == ("30", "1", "1-5")
    assert PeriodicTask.objects.get(name="modelregistry: retraining triggers").enabled is False
    assert "predictions: nightly full scoring: 30 1 * * 1-5 (UTC)" in out.getvalue()


@pytest.mark.parametrize("line", ["0 2 * *", "61 2 * * *", "a b c d e"])
def test_a_bad_cron_line_is_refused_with_the_setting_named(line):
    with pytest.raises(ImproperlyConfigured, match="BATCH_SCORING_CRON"):
        parse_cron(line, setting="BATCH_SCORING_CRON")


@pytest.mark.parametrize("line", ["0 2 * *", "61 2 * * *", "a b c d e", "0 2 * * 1-9"])
def test_a_data_source_refuses_the_cron_lines_a_schedule_setting_refuses(line):
    """One cron validator (churn_infra.schedules) for the schedule settings and the data sources."""
    from customers.ingestion.sources import configuration_errors
    from customers.models import DataSource, SourceKind

    with pytest.raises(ImproperlyConfigured):
        parse_cron(line, setting="BATCH_SCORING_CRON")
    source = DataSource(kind=SourceKind.HTTP, name="crm", url="http://127.0.0.1:9/customers", schedule=line)
    assert configuration_errors(source)["schedule"] == [
        'Must be a cron expression: minute hour day-of-month month day-of-week, e.g. "0 2 * * *".'
    ]


def test_a_bad_schedule_setting_stops_setup(settings):
    settings.RETRAIN_CRON = "every month"
    with pytest.raises(ImproperlyConfigured, match="RETRAIN_CRON"):
        schedules_setup()


def test_the_nightly_task_starts_a_full_job(active_version, store_customers, django_capture_on_commit_callbacks):
    from predictions.tasks import batch_jobs_nightly

    store_customers(25)
    with django_capture_on_commit_callbacks(execute=True):
        job_id = batch_jobs_nightly.apply().get()
    job = BatchJob.objects.get(pk=job_id)
    assert (job.origin, job.scope, job.status, job.scored) == (BatchJobOrigin.SCHEDULE, "all", "succeeded", 25)


def test_the_nightly_task_without_a_model_logs_and_skips(store_customers):
    from predictions.tasks import batch_jobs_nightly

    store_customers(3)
    assert batch_jobs_nightly.apply().get() is None
    assert not BatchJob.objects.exists()


# --- admin ----------------------------------------------------------------------------------------


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def test_a_full_scoring_starts_from_the_admin(
    admin_client, active_version, store_customers, django_capture_on_commit_callbacks
):
    store_customers(40)
    changelist = admin_client.get("/admin/predictions/batchjob/")
    assert changelist.status_code == 200
    assert b"Start full scoring" in changelist.content
    confirm = admin_client.get("/admin/predictions/batchjob/start-full/")
    assert confirm.status_code == 200
    assert b"40" in confirm.content
    assert active_version.version.encode() in confirm.content
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/admin/predictions/batchjob/start-full/")
    job = BatchJob.objects.get()
    assert response.status_code == 302
    assert response["Location"].endswith(f"/admin/predictions/batchjob/{job.pk}/change/")
    job.refresh_from_db()
    assert (job.origin, job.status, job.scored, job.requested_by) == ("admin", "succeeded", 40, "user:root")
    page = admin_client.get(f"/admin/predictions/batchjob/{job.pk}/change/")
    assert page.status_code == 200
    assert b"results file (CSV)" in page.content


def test_staff_without_the_permission_cannot_start_a_job(client, staff_user, active_version):
    client.force_login(staff_user)
    assert client.post("/admin/predictions/batchjob/start-full/").status_code in (302, 403)
    assert not BatchJob.objects.exists()


def test_admin_actions_cancel_and_run_again(admin_client, active_version, store_customers,
                                            django_capture_on_commit_callbacks):
    from predictions.batch_jobs.create import batch_job_create

    ids = store_customers(10)
    queued = batch_job_create(scope="ids", customer_ids=ids[:4])  # not committed: stays queued
    admin_client.post("/admin/predictions/batchjob/", {"action": "cancel_selected", "_selected_action": [queued.pk]})
    queued.refresh_from_db()
    assert queued.status == BatchJobStatus.CANCELLED
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post("/admin/predictions/batchjob/", {"action": "rerun_selected",
                                                            "_selected_action": [queued.pk]})
    again = BatchJob.objects.exclude(pk=queued.pk).get()
    assert (again.scope, again.customer_ids, again.status, again.scored) == ("ids", ids[:4], "succeeded", 4)
    assert Prediction.objects.filter(batch_job=again).count() == 4


def test_the_worker_status_page_and_command(admin_client, active_version, store_customers):
    from predictions.batch_jobs.create import batch_job_create

    store_customers(5)
    batch_job_create(scope="all")
    page = admin_client.get("/admin/predictions/batchjob/worker-status/")
    assert page.status_code == 200
    assert b"Batch jobs queued or running" in page.content
    out = StringIO()
    call_command("worker_status", stdout=out)
    text = out.getvalue()
    assert "in-process" in text  # the tests run tasks eagerly: no queues to show
    assert "all (api) queued" in text
    report = json.loads(_command_json())
    assert report["eager"] is True
    assert report["jobs"][0]["status"] == "queued"


def _command_json() -> str:
    out = StringIO()
    call_command("worker_status", "--json", stdout=out)
    return out.getvalue()
