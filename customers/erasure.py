"""Erasing one customer's personal data (the right to erasure), completely or not at all."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from django.conf import settings
from django.db import transaction

from accounts.services import Actor, audit_record
from customers.erasure_signals import customer_erased
from customers.models import Customer, CustomerEvent, Outcome, QuarantinedRow


class CustomerNotFound(LookupError):
    pass


def erasure_reference(customer_id: str) -> str:
    """A keyed hash of the erased id: lets an operator confirm "was X erased?" without storing X."""
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, f"customer-erasure:{customer_id}".encode(), hashlib.sha256).hexdigest()


def customer_erase(*, customer_id: str, actor: Actor, reason: str = "") -> dict[str, int]:
    """Remove the customer's record, outcomes, events and quarantined rows; the receivers of
    `customer_erased` null their predictions' input snapshots and anonymise campaign targets
    (aggregate counts stay). One audit entry holds the counts and a keyed hash, not the values."""
    with transaction.atomic():
        customer = Customer.objects.select_for_update().filter(customer_id=customer_id).first()
        if customer is None:
            raise CustomerNotFound(customer_id)
        counts: dict[str, int] = {}
        # Synchronously, inside this transaction (see customers/erasure_signals.py).
        for _receiver, result in customer_erased.send(sender=Customer, customer_pk=customer.pk,
                                                      customer_id=customer_id):
            counts.update(result or {})
        counts["outcomes"] = Outcome.objects.filter(customer=customer).delete()[0]
        counts["events"] = CustomerEvent.objects.filter(customer=customer).delete()[0]
        counts["quarantined_rows"] = QuarantinedRow.objects.filter(customer_id=customer_id).delete()[0]
        customer.delete()
        counts["customers"] = 1
        details: dict[str, Any] = {"reference": erasure_reference(customer_id), "rows": counts}
        if reason:
            details["reason"] = reason[:500]
        audit_record(actor=actor, action="customer.erase", object_type="customers.customer",
                     object_id="erased", details=details)
    return counts
