from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.models import ALL_SCOPES, Department
from accounts.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a department (created if missing). Prints the key alone on its last line."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--department", required=True)
        parser.add_argument("--name", required=True, help="A label for the key, e.g. the client's name.")
        parser.add_argument(
            "--scopes", nargs="*", help=f"Default: all but models:manage and keys:manage. Any of {sorted(ALL_SCOPES)}"
        )
        parser.add_argument("--expires-days", type=int, help="Days until the key expires; default never.")
        parser.add_argument("--allow-ip", action="append", default=[], help="Address or CIDR; repeatable.")
        parser.add_argument("--rate-limit", type=int, help="Requests per minute for this key.")

    def handle(self, *args: Any, **opts: Any) -> None:
        scopes = opts["scopes"]
        if scopes is not None and not set(scopes) <= ALL_SCOPES:
            raise CommandError(f"Unknown scopes: {sorted(set(scopes) - ALL_SCOPES)}")
        if opts["expires_days"] is not None and opts["expires_days"] <= 0:
            raise CommandError("--expires-days must be positive")
        department, created = Department.objects.get_or_create(name=opts["department"])
        if created:
            self.stdout.write(f"Created department {department.name!r}.")
        expires_at = timezone.now() + timedelta(days=opts["expires_days"]) if opts["expires_days"] else None
        try:
            key, plaintext = api_key_create(
                department=department,
                name=opts["name"],
                scopes=scopes,
                expires_at=expires_at,
                ip_allowlist=opts["allow_ip"],
                rate_limit_per_minute=opts["rate_limit"],
            )
        except Exception as exc:  # a validation error names the bad field
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"API key {key.name!r} (prefix {key.prefix}) for department {department.name!r}:")
        self.stdout.write(plaintext)
