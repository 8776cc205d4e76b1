"""`make run`'s set-up: demo customers, an active model, their scores, an admin login and an API key.

It lives with the wiring because it drives every app (accounts, customers, the registry, predictions).
Running it again keeps the demo password and key (kept in ``var/demo-credentials.json``, readable by
the owner only) so that a second ``make run`` does not break a client already configured with them;
``--rotate`` replaces both.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import ApiKey, Department, Membership
from accounts.services import SYSTEM, api_key_create, api_key_revoke, secret_matches, split_key
from customers.models import Customer
from modelregistry.models import ModelVersion
from predictions.batch_jobs.create import batch_job_create
from predictions.models import BatchJobOrigin, BatchJobScope, Prediction

DEMO_DATA = Path(settings.BASE_DIR) / "data" / "telco_customer_churn.csv"
DEMO_DEPARTMENT = "demo"
DEMO_KEY_NAME = "demo"
DEMO_USERNAME = "admin"


def credentials_path() -> Path:
    return Path(settings.VAR_DIR) / "demo-credentials.json"


def _read_credentials() -> dict[str, str]:
    try:
        data = json.loads(credentials_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_credentials(data: dict[str, str]) -> None:
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600 before anything is written, so the password is never readable by others.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)


def _usable_key(department: Department, plaintext: str | None) -> bool:
    parts = split_key(plaintext or "")
    if parts is None:
        return False
    key = ApiKey.objects.usable().filter(department=department, name=DEMO_KEY_NAME, prefix=parts[0]).first()
    return key is not None and secret_matches(key.salt, key.secret_hash, parts[1])


class Command(BaseCommand):
    help = (
        "Prepare a demo installation: load the bundled customers, train and activate a model when none is "
        "active, score the customers, and print a demo admin login and API key (kept across runs unless "
        "--rotate)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--skip-model", action="store_true", help="Do not train a model nor score.")
        parser.add_argument("--rotate", action="store_true", help="Replace the demo password and API key.")
        parser.add_argument("--host", default="127.0.0.1", help="Host the server will listen on (for the URLs).")
        parser.add_argument("--port", type=int, default=8000, help="Port the server will listen on (for the URLs).")

    def handle(self, *args: Any, **opts: Any) -> None:
        if not Customer.objects.exists():
            call_command("import_telco_csv", str(DEMO_DATA), source="demo", stdout=self.stdout, stderr=self.stderr)
        else:
            self.stdout.write(f"Customers already loaded ({Customer.objects.count()}).")

        if not opts["skip_model"]:
            self._ensure_model()
            self._ensure_scores()

        password, plaintext = self._credentials(rotate=opts["rotate"])
        host = opts["host"] if opts["host"] not in ("0.0.0.0", "::", "") else "127.0.0.1"  # noqa: S104 - listen-all shown as loopback
        base = f"http://{host}:{opts['port']}"
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS("Demo ready."))
        self.stdout.write(f"  Admin:       {base}/admin/  user {DEMO_USERNAME}  password {password}")
        self.stdout.write(f"  Staff pages: {base}/staff/  (same login)")
        self.stdout.write(f"  API docs:    {base}/api/docs/")
        self.stdout.write(f"  API key (department {DEMO_DEPARTMENT}): {plaintext}")
        self.stdout.write(f"  Try:  export KEY={plaintext}")
        self.stdout.write(f"        curl -H \"X-API-Key: $KEY\" {base}/api/v1/customers/7074-IEVOJ/")
        self.stdout.write(f"  (kept in {credentials_path()}; `manage.py bootstrap_demo --rotate` replaces them)")

    def _ensure_model(self) -> None:
        active = ModelVersion.objects.active().first()
        if active is not None:
            self.stdout.write(f"Model {active.version} is active.")
            return
        call_command("train_model", data=str(DEMO_DATA), activate=True, stdout=self.stdout)

    def _ensure_scores(self) -> None:
        """Score every customer once with the active model, so the first customer opened has a prediction."""
        active = ModelVersion.objects.active().first()
        if active is None or Prediction.objects.filter(model_version=active).exists():
            return
        job = batch_job_create(scope=BatchJobScope.ALL, origin=BatchJobOrigin.COMMAND, actor=SYSTEM)
        job.refresh_from_db()
        if job.status == "succeeded":
            self.stdout.write(f"Scored {job.scored} customers with model {active.version} (job {job.pk}).")
        else:
            self.stdout.write(f"Scoring job {job.pk} is {job.status}; the workers score the customers.")

    @transaction.atomic
    def _credentials(self, *, rotate: bool) -> tuple[str, str]:
        stored = {} if rotate else _read_credentials()
        department, _ = Department.objects.get_or_create(
            name=DEMO_DEPARTMENT, defaults={"description": "Demo department"}
        )
        user_model = get_user_model()
        user, _ = user_model.objects.get_or_create(username=DEMO_USERNAME, defaults={"email": "admin@example.com"})
        password = os.environ.get("DEMO_ADMIN_PASSWORD") or stored.get("password") or secrets.token_urlsafe(12)
        if not user.is_staff or not user.is_superuser or not user.check_password(password):
            user.is_staff = user.is_superuser = True
            user.set_password(password)
            user.save()
        Membership.objects.get_or_create(user=user, defaults={"department": department})

        plaintext = stored.get("api_key")
        if not _usable_key(department, plaintext):
            for old in ApiKey.objects.usable().filter(department=department, name=DEMO_KEY_NAME):
                api_key_revoke(key_id=old.pk, actor=SYSTEM, reason="replaced by a new demo key")
            _, plaintext = api_key_create(department=department, name=DEMO_KEY_NAME)
        assert plaintext is not None
        _write_credentials({"password": password, "api_key": plaintext})
        return password, plaintext
