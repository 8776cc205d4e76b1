from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from churn_platform.schedules import SCHEDULES, schedules_setup


class Command(BaseCommand):
    help = (
        "Write the platform's beat schedules to django-celery-beat from their settings ("
        + ", ".join(entry.setting for entry in SCHEDULES)
        + "). Idempotent; migrate runs it too."
    )

    def handle(self, *args: Any, **opts: Any) -> None:
        for name, line in schedules_setup():
            self.stdout.write(f"{name}: {line} (UTC)")
