"""Reads for predictions."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from customers.models import Customer
from predictions.models import BatchJob, Prediction


def prediction_list() -> QuerySet[Prediction]:
    return Prediction.objects.select_related("model_version")


def prediction_latest_for_customer(*, customer: Customer) -> Prediction | None:
    return prediction_list().filter(customer_id=customer.customer_id).order_by("-created_at", "-pk").first()


def batch_job_list() -> QuerySet[BatchJob]:
    return BatchJob.objects.select_related("model_version").order_by("-created_at", "-pk")


def risk_increases(*, job: BatchJob | None = None, since: datetime | None = None) -> QuerySet[Prediction]:
    """Batch-job predictions whose risk level rose since the customer's previous prediction.

    The campaigns' hook: after a nightly job, ``risk_increases(job=job)`` are the customers to
    reach first. Backed by a partial index, so it stays cheap however many predictions there are.
    """
    rows = Prediction.objects.filter(risk_increased=True)
    if job is not None:
        rows = rows.filter(batch_job=job)
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    return rows.order_by("-created_at", "-pk")
