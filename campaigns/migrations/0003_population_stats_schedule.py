from django.db import migrations

TASK_NAME = "campaigns: refresh dashboard population charts"


def create_schedule(apps, schema_editor):
    # Every 5 minutes, the freshness the staff dashboard promises (selectors.dashboard.POPULATION_FRESH_SECONDS).
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={"task": "campaigns.tasks.refresh_population_stats", "interval": every, "queue": "interactive"},
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0002_close_ended_campaigns_schedule")]
    operations = [migrations.RunPython(create_schedule, remove_schedule)]
