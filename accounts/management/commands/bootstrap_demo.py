from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from accounts.models import ApiKey, Department, Membership
from accounts.services import SYSTEM, api_key_create, api_key_revoke
from customers.models import Customer

DEMO_DATA = Path(settings.BASE_DIR) / "data" / "telco_customer_churn.csv"


class Command(BaseCommand):
    help = (
        "Prepare a demo installation: load the bundled customers, train and activate a model when none is "
        "active, and create a demo admin user and a fresh demo API key (both printed)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--skip-model", action="store_true", help="Do not train a model.")

    def handle(self, *args: Any, **opts: Any) -> None:
        if not Customer.objects.exists():
            call_command("import_telco_csv", str(DEMO_DATA), source="demo", stdout=self.stdout, stderr=self.stderr)
        else:
            self.stdout.write(f"Customers already loaded ({Customer.objects.count()}).")

        if not opts["skip_model"]:
            self._ensure_model()

        department, _ = Department.objects.get_or_create(name="demo", defaults={"description": "Demo department"})
        username = "admin"
        password = os.environ.get("DEMO_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        user_model = get_user_model()
        user, _ = user_model.objects.get_or_create(username=username, defaults={"email": "admin@example.com"})
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        Membership.objects.get_or_create(user=user, defaults={"department": department})

        for old in ApiKey.objects.usable().filter(department=department, name="demo"):
            api_key_revoke(key_id=old.pk, actor=SYSTEM, reason="replaced by a new demo key")
        _, plaintext = api_key_create(department=department, name="demo")

        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS("Demo ready."))
        self.stdout.write(f"  Admin:    http://127.0.0.1:8000/admin/  user {username}  password {password}")
        self.stdout.write("  API docs: http://127.0.0.1:8000/api/docs/")
        self.stdout.write(f"  API key (department demo): {plaintext}")
        self.stdout.write(f"  Try: curl -H 'X-API-Key: {plaintext}' http://127.0.0.1:8000/api/v1/customers/7074-IEVOJ/")

    def _ensure_model(self) -> None:
        from modelregistry.models import ModelVersion

        if ModelVersion.objects.active().exists():
            self.stdout.write(f"Model {ModelVersion.objects.active().get().version} is active.")
            return
        call_command("train_model", data=str(DEMO_DATA), activate=True, stdout=self.stdout)
