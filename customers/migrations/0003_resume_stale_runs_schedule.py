"""Celery beat checks every five minutes for ingestion runs whose worker died, and queues them again."""

from django.db import migrations

NAME = "ingestion: resume stale runs"


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    PeriodicTask.objects.update_or_create(
        name=NAME,
        defaults={
            "task": "customers.tasks.ingestion_runs_resume_stale",
            "interval": every,
            "enabled": True,
            "description": "Queue again the ingestion runs whose worker stopped reporting (killed, lost message).",
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0002_ingestion"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
