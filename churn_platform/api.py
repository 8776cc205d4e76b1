"""Small helpers shared by the API views."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ValidationError

from churn_ml.schema import ValidationResult


def require_object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        kind = "an array" if isinstance(data, list) else type(data).__name__
        raise ValidationError({"non_field_errors": [f"Expected a JSON object; got {kind}."]})
    return data


def require_record_list(data: Any, *, key: str, limit: int) -> list[Any]:
    """``{key: [...]}`` with at most ``limit`` items and no other fields."""
    body = require_object(data)
    unknown = sorted(set(body) - {key})
    if unknown:
        raise ValidationError({name: ["Unknown field."] for name in unknown})
    items = body.get(key)
    if items is None:
        raise ValidationError({key: ["This field is required."]})
    if not isinstance(items, list):
        raise ValidationError({key: ["Expected a list of records."]})
    if not items:
        raise ValidationError({key: ["At least one record is required."]})
    if len(items) > limit:
        raise ValidationError({key: [f"At most {limit} records per request; got {len(items)}."]})
    return items


def row_errors(result: ValidationResult, errors: dict[int, dict[str, list[str]]], records: list[Any]) -> list[dict]:
    """Per-row errors in the contract's shape: [{"index", "customer_id", "errors"}] in input order."""
    out = []
    for i in sorted(errors):
        record = records[i]
        cid = result.columns["customer_id"][i]
        if cid is None and isinstance(record, dict) and isinstance(record.get("customer_id"), str):
            cid = record["customer_id"][:64]
        out.append({"index": i, "customer_id": cid, "errors": errors[i]})
    return out
