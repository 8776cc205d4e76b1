"""The error answers every operation can give, documented once in the schema (drf-spectacular hook).

Every error body has one shape (churn_infra.exceptions.error_body); every operation may answer
400 (bad input), 401 (no or bad credentials), 403 (scope or department), 404, 429 (rate limit,
quota: with Retry-After) and 503 (a dependency is down: with Retry-After); those that change
something may answer 409 (the object's state does not allow it now). Uploads may also answer 411
and 413. Operations that document one of these themselves keep their own.
"""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error: a code to branch on, a detail to read, and for 400 the fields at fault.",
    "properties": {
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "errors": {
            "type": "object",
            "additionalProperties": True,
            "description": "Field name -> messages (400 only).",
        },
        "request_id": {"type": "string"},
    },
    "required": ["detail", "code"],
}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before retrying."}}
COMMON = {
    "400": "The request is invalid; errors names each field and what is wrong.",
    "401": "No credentials, or credentials that are unknown, expired or revoked.",
    "403": "The credentials lack the scope, or the object belongs to another department.",
    "404": "No such object (or page) for this caller.",
    "429": "Too many requests, or a quota is reached: retry after Retry-After seconds.",
    "503": "A dependency (database, cache, broker, model) is unavailable: retry after Retry-After seconds.",
}
CHANGES = {"409": "The object's state does not allow this now (e.g. nothing to roll back to, a run in progress)."}
UPLOAD = {
    "411": "The upload has no Content-Length.",
    "413": "The request body is larger than the server accepts.",
}


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for item in result.get("paths", {}).values():
        for method, operation in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            codes = dict(COMMON)
            if method != "get":
                codes.update(CHANGES)
            if "multipart/form-data" in operation.get("requestBody", {}).get("content", {}):
                codes.update(UPLOAD)
            for code, description in codes.items():
                if code in responses:
                    continue
                response: dict[str, Any] = {"description": description, "content": ref}
                if code in ("429", "503"):
                    response["headers"] = _RETRY_AFTER
                responses[code] = response
    return result
