from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from predictions.schedules import schedules_setup


class Command(BaseCommand):
    help = (
        "Write the nightly scoring, batch watchdog, monthly retraining and trigger evaluation schedules to "
        "django-celery-beat from their settings (BATCH_SCORING_CRON, BATCH_WATCHDOG_CRON, RETRAIN_CRON, "
        "RETRAIN_EVALUATION_CRON). Idempotent; migrate runs it too."
    )

    def handle(self, *args: Any, **opts: Any) -> None:
        for name, line in schedules_setup():
            self.stdout.write(f"{name}: {line} (UTC)")
