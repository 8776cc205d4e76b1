from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _setup_schedules(sender: AppConfig, using: str = "default", **kwargs: object) -> None:
    # After every migrate (deploys, `make run`, the test database), so the beat schedules always
    # match the settings without a separate step anyone could forget.
    from django.db import connections

    if "django_celery_beat_periodictask" not in connections[using].introspection.table_names():
        return  # a partial migrate that has not reached django-celery-beat yet
    from predictions.schedules import schedules_setup

    schedules_setup(using=using)


class PredictionsConfig(AppConfig):
    name = "predictions"
    verbose_name = "Predictions"

    def ready(self) -> None:
        post_migrate.connect(_setup_schedules, sender=self, dispatch_uid="predictions.setup_schedules")
        from customers.erasure_signals import customer_erased
        from predictions.erasure import erase_prediction_inputs

        customer_erased.connect(erase_prediction_inputs, dispatch_uid="predictions.erase_prediction_inputs")

        from customers.ports import register_latest_prediction_reader
        from customers.signals import outcomes_recorded
        from modelregistry.ports import register_prediction_reader
        from predictions.live_performance import schedule_refresh
        from predictions.readers import PredictionReader, latest_prediction_payload

        # The registry and customers read predictions through these interfaces (they may not import this app).
        register_prediction_reader(PredictionReader())
        register_latest_prediction_reader(latest_prediction_payload)
        outcomes_recorded.connect(schedule_refresh, dispatch_uid="predictions.live_performance")
