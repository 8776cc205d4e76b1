"""Small helpers shared by the API views."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, status
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request

from churn_ml.schema import ValidationResult

# A multipart body carries boundaries and headers around the file.
MULTIPART_OVERHEAD = 64 * 1024


class UploadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"
    default_detail = "The file is larger than the server accepts."


class LengthRequired(exceptions.APIException):
    status_code = status.HTTP_411_LENGTH_REQUIRED
    default_code = "length_required"
    default_detail = "Send a Content-Length header with the upload."


class JsonErrorsMixin:
    """Errors stay JSON on views that also render CSV (``?format=csv`` or ``Accept: text/csv``)."""

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(response, "status_code", 200) >= 400 and hasattr(response, "data"):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = "application/json"
        return super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]


def require_declared_length(request: Request, limit: int) -> None:
    """Refuse an upload by its declared Content-Length (411 without one, 413 above the limit) before reading it."""
    raw_length = request.META.get("CONTENT_LENGTH")
    if not raw_length:
        raise LengthRequired()
    try:
        length = int(raw_length)
    except ValueError:
        raise exceptions.ParseError("The Content-Length header is not a number.") from None
    if length > limit + MULTIPART_OVERHEAD:
        raise UploadTooLarge(f"The upload is {length} bytes; the limit is {limit} bytes.")


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
