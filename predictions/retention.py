"""PREDICTION_RETENTION_DAYS: predictions older than that are deleted by a beat task."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from accounts.services import SYSTEM, audit_record
from churn_infra.db import delete_in_batches
from predictions.models import Prediction


def predictions_purge_expired(*, now: datetime | None = None) -> int:
    """Delete predictions past the retention period (0 keeps them all); audited with the count."""
    days = settings.PREDICTION_RETENTION_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deleted = delete_in_batches(Prediction.objects.filter(created_at__lt=cutoff))
    if deleted:
        audit_record(actor=SYSTEM, action="predictions.retention_purge", object_type="predictions.prediction",
                     details={"deleted": deleted, "older_than": cutoff.isoformat(), "retention_days": days})
    return deleted
