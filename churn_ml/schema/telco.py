"""The IBM Telco Customer Churn layout: its columns, its churn labels, and reading its CSV files."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from churn_ml.deferred import deferred
from churn_ml.schema.validate import validate_columns
from churn_ml.schema.values import _as_object_array, _parse_bool, _unique_map

# pandas loads on first use (churn_ml.deferred): a web worker that scores single records never needs it.
pd = deferred("pandas")

# The columns of the IBM Telco Customer Churn sample and the contract fields they carry.
TELCO_COLUMNS: Final[dict[str, str]] = {
    "customerID": "customer_id",
    "gender": "gender",
    "SeniorCitizen": "senior_citizen",
    "Partner": "partner",
    "Dependents": "dependents",
    "tenure": "tenure_months",
    "PhoneService": "phone_service",
    "MultipleLines": "multiple_lines",
    "InternetService": "internet_service",
    "OnlineSecurity": "online_security",
    "OnlineBackup": "online_backup",
    "DeviceProtection": "device_protection",
    "TechSupport": "tech_support",
    "StreamingTV": "streaming_tv",
    "StreamingMovies": "streaming_movies",
    "Contract": "contract_type",
    "PaperlessBilling": "paperless_billing",
    "PaymentMethod": "payment_method",
    "MonthlyCharges": "monthly_charges",
    "TotalCharges": "total_charges",
}
TELCO_LABEL_COLUMN: Final = "Churn"


def telco_columns(frame: pd.DataFrame) -> dict[str, Any]:
    """Map a frame in the IBM Telco layout onto contract field columns (extra columns ignored)."""
    return {TELCO_COLUMNS[c]: frame[c] for c in frame.columns if c in TELCO_COLUMNS}


def parse_churn_labels(values: Sequence[Any] | pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Telco ``Churn`` column to (label bool array, known mask); unparseable labels are unknown."""
    arr = _as_object_array(values, len(values))
    parsed, messages = _unique_map(arr, _parse_bool)
    known = (parsed != None) & (messages == None)  # noqa: E711
    return np.where(known, parsed, False).astype(bool), known.astype(bool)


def load_telco_csv(path: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a Telco-layout CSV into (canonical frame of valid rows, churn labels).

    Raises ValueError naming the first bad rows when any row fails validation or lacks a label:
    training data must be clean, and the caller decides what to do with a dirty file.
    """
    raw = pd.read_csv(path, dtype={"customerID": str}, keep_default_na=False)
    missing = [c for c in (*TELCO_COLUMNS, TELCO_LABEL_COLUMN) if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: missing Telco columns {', '.join(missing)}")
    result = validate_columns(telco_columns(raw), len(raw))
    labels, known = parse_churn_labels(raw[TELCO_LABEL_COLUMN])
    bad = sorted(result.errors)[:5]
    if bad:
        details = "; ".join(f"row {i + 2}: {result.errors[i]}" for i in bad)
        raise ValueError(f"{path}: {len(result.errors)} invalid rows, e.g. {details}")
    if not known.all():
        first = int(np.flatnonzero(~known)[0])
        raise ValueError(f"{path}: row {first + 2} has an unreadable Churn value {raw[TELCO_LABEL_COLUMN][first]!r}")
    return result.frame(), labels
