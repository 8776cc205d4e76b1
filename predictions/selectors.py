"""Reads for predictions."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from accounts.selectors import department_scoped
from accounts.services import Actor
from customers.models import Customer
from predictions.models import BatchJob, Prediction


def prediction_list(*, actor: Actor | None = None) -> QuerySet[Prediction]:
    """Predictions, newest first; with an actor, only those the actor may read.

    A batch job's predictions belong to the job's department (a file job scores prospects that
    were never stored as customers), so another department never lists them. Predictions of
    stored customers made outside a department's job stay company-wide, like the customers.
    """
    rows = Prediction.objects.select_related("model_version")
    if actor is None or actor.is_superuser:
        return rows
    foreign_jobs = BatchJob.objects.filter(department__isnull=False).exclude(department_id=actor.department_id)
    return rows.exclude(batch_job_id__in=foreign_jobs.values("pk"))


def prediction_latest_for_customer(*, customer: Customer) -> Prediction | None:
    return prediction_list().filter(customer_id=customer.customer_id).order_by("-created_at", "-pk").first()


def batch_job_list(*, actor: Actor) -> QuerySet[BatchJob]:
    """The jobs the actor may see: its department's; superusers see every job."""
    jobs = BatchJob.objects.select_related("model_version").order_by("-created_at", "-pk")
    return department_scoped(jobs, actor=actor)


def risk_increases(*, job: BatchJob | None = None, since: datetime | None = None) -> QuerySet[Prediction]:
    """Batch-job predictions whose risk level rose since the customer's previous prediction.

    The campaigns' hook: after a nightly job, ``risk_increases(job=job)`` are the customers to
    reach first. Backed by a partial index, so it stays cheap however many predictions there are.
    """
    rows = Prediction.objects.filter(risk_increased=True)
    if job is not None:
        rows = rows.of_job(job)
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    return rows.order_by("-created_at", "-pk")
