"""The predictions side of modelregistry.ports and customers.ports (registered in PredictionsConfig.ready())."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Avg, Count, F, OuterRef, Subquery, Value
from django.db.models.functions import Greatest

from churn_ml.inputs import snapshot_fields
from customers.models import Customer, Outcome
from predictions.api.serializers import PredictionSerializer
from predictions.models import Prediction
from predictions.selectors import prediction_latest_for_customer


class PredictionReader:
    def outcome_pairs(
        self,
        *,
        version_id: int,
        outcomes_since: datetime | None = None,
        predicted_since: datetime | None = None,
        predicted_until: datetime | None = None,
    ) -> list[tuple[float, bool]]:
        scored = Prediction.objects.filter(model_version_id=version_id)
        if predicted_since is not None:
            scored = scored.filter(created_at__gte=predicted_since)
        if predicted_until is not None:
            scored = scored.filter(created_at__lte=predicted_until)
        before = scored.filter(
            customer_id=OuterRef("customer__customer_id"), created_at__lte=OuterRef("observed_at")
        ).order_by("-created_at", "-pk")
        outcomes = Outcome.objects.all()
        if outcomes_since is not None:
            outcomes = outcomes.filter(observed_at__gte=outcomes_since)
        return list(
            outcomes.annotate(probability=Subquery(before.values("churn_probability")[:1]))
            .filter(probability__isnull=False)
            .values_list("probability", "churned")
        )

    def scored_summary(self, *, version_id: int, since: datetime, until: datetime) -> tuple[int, float | None]:
        figures = Prediction.objects.filter(
            model_version_id=version_id, created_at__gte=since, created_at__lte=until
        ).aggregate(n=Count("pk"), mean=Avg("churn_probability"))
        return figures["n"], figures["mean"]

    def recent_scored_inputs(self, *, since: datetime, limit: int) -> list[dict[str, Any]]:
        rows = (
            Prediction.objects.filter(created_at__gte=since, inputs__isnull=False)
            .order_by("-created_at")
            .values_list("customer_id", "inputs")[:limit]
        )
        # Snapshots are compact arrays (churn_ml.inputs); older single predictions kept objects.
        return [
            {"customer_id": customer_id, **fields}
            for customer_id, stored in rows
            if (fields := snapshot_fields(stored)) is not None
        ]

    def recent_confidence(self, *, version_id: int, since: datetime, limit: int) -> tuple[int, float | None]:
        recent = (
            Prediction.objects.filter(model_version_id=version_id, created_at__gte=since)
            .order_by("-created_at")
            .values("pk")[:limit]
        )
        figures = Prediction.objects.filter(pk__in=recent).aggregate(
            n=Count("pk"), mean=Avg(Greatest(F("churn_probability"), Value(1.0) - F("churn_probability")))
        )
        return figures["n"], figures["mean"]


def latest_prediction_payload(customer: Customer) -> dict[str, Any] | None:
    """customers.ports.LatestPredictionReader: the customer detail's ``latest_prediction``."""
    prediction = prediction_latest_for_customer(customer=customer)
    return PredictionSerializer(prediction).data if prediction is not None else None
