"""Reads for predictions."""

from __future__ import annotations

from django.db.models import QuerySet

from customers.models import Customer
from predictions.models import Prediction


def prediction_list() -> QuerySet[Prediction]:
    return Prediction.objects.select_related("model_version")


def prediction_latest_for_customer(*, customer: Customer) -> Prediction | None:
    return prediction_list().filter(customer_id=customer.customer_id).order_by("-created_at", "-pk").first()
