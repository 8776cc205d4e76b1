from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


def _setup_schedules(sender: AppConfig, using: str = "default", **kwargs: object) -> None:
    # After every migrate (deploys, `make run`, the test database), so the beat schedules always
    # match the settings without a separate step anyone could forget.
    from django.db import connections

    if "django_celery_beat_periodictask" not in connections[using].introspection.table_names():
        return  # a partial migrate that has not reached django-celery-beat yet
    from churn_platform.schedules import schedules_setup

    schedules_setup(using=using)


class ChurnPlatformConfig(AppConfig):
    """The wiring: commands that drive several apps, and the beat schedules of every app."""

    name = "churn_platform"
    verbose_name = "Platform"

    def ready(self) -> None:
        # post_migrate is sent once per app with models (not this one), after every migration ran.
        beat = apps.get_app_config("django_celery_beat")
        post_migrate.connect(_setup_schedules, sender=beat, dispatch_uid="churn_platform.setup_schedules")
