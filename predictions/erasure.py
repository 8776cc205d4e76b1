"""Receiver of customers' `customer_erased`: the erased customer's prediction inputs go."""

from __future__ import annotations

from typing import Any

from predictions.models import Prediction


def erase_prediction_inputs(*, customer_id: str, **kwargs: Any) -> dict[str, int]:
    """Null the input snapshots (the record as scored); the scores stay for the model's metrics."""
    cleared = Prediction.objects.filter(customer_id=customer_id, inputs__isnull=False).update(inputs=None)
    return {"prediction_inputs": cleared}
