from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from accounts.services import SYSTEM
from customers.erasure import CustomerNotFound, customer_erase


class Command(BaseCommand):
    help = (
        "Erase one customer's personal data: the record, outcomes, events and quarantined rows, their "
        "predictions' input snapshots, and their campaign notes (targets are kept, anonymised). Audited."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("customer_id")
        parser.add_argument("--reason", default="", help="Why (e.g. the request's reference); kept in the audit log.")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            counts = customer_erase(customer_id=opts["customer_id"], actor=SYSTEM, reason=opts["reason"])
        except CustomerNotFound:
            raise CommandError(f"No customer with customer_id {opts['customer_id']!r}.") from None
        self.stdout.write("Erased: " + ", ".join(f"{name} {n}" for name, n in sorted(counts.items())))
