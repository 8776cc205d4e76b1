"""What the customers app shows from the apps above it, without importing them.

A customer's detail in the API carries the customer's latest prediction, but the predictions
app sits above customers (it scores customers), so customers cannot import it. Predictions
registers the reader in PredictionsConfig.ready() (predictions.readers), as it does the
registry's modelregistry.ports.PredictionReader.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from customers.models import Customer

# The customer's latest prediction in the API's shape (the predictions list's item), or None.
LatestPredictionReader = Callable[["Customer"], "dict[str, Any] | None"]

_latest_prediction: LatestPredictionReader | None = None


def register_latest_prediction_reader(reader: LatestPredictionReader) -> None:
    global _latest_prediction
    _latest_prediction = reader


def latest_prediction(customer: Customer) -> dict[str, Any] | None:
    if _latest_prediction is None:
        raise RuntimeError("No latest-prediction reader registered: is the predictions app installed?")
    return _latest_prediction(customer)
