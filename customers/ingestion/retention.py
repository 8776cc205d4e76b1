"""QUARANTINE_RETENTION_DAYS: rejected rows older than that are deleted by a beat task."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from accounts.services import SYSTEM, audit_record
from churn_infra.db import delete_in_batches
from customers.models import QuarantinedRow


def quarantined_rows_purge_expired(*, now: datetime | None = None) -> int:
    """Delete quarantined rows past the retention period (0 keeps them all); audited with the count.

    The run keeps its counts and quality report; only the rows as they arrived (personal data
    that failed validation) go.
    """
    days = settings.QUARANTINE_RETENTION_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deleted = delete_in_batches(QuarantinedRow.objects.filter(created_at__lt=cutoff))
    if deleted:
        audit_record(actor=SYSTEM, action="ingestion.quarantine_retention_purge",
                     object_type="customers.quarantinedrow",
                     details={"deleted": deleted, "older_than": cutoff.isoformat(), "retention_days": days})
    return deleted
