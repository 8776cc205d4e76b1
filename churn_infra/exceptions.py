"""One JSON error shape for every API failure.

Every error body is ``{"detail": "...", "code": "...", "request_id": "..."}``; validation errors add
``"errors": {field: [messages]}``. Clients branch on ``code``; people read ``detail``.

An unavailable dependency (``churn_infra.outages``: a ServiceUnavailable, a database or Redis
connection error, a statement timeout) is a 503 with Retry-After, never a 500.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from churn_infra.errors import InputError
from churn_infra.logging import current_request_id
from churn_infra.metrics import SERVICE_UNAVAILABLE
from churn_infra.outages import OUTAGE_ERRORS, ServiceUnavailable, outage_detail

logger = logging.getLogger(__name__)



def wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


def error_body(code: str, detail: str, errors: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"detail": detail, "code": code}
    if errors is not None:
        body["errors"] = errors
    body["request_id"] = current_request_id()
    return body


def json_error(status: int, code: str, detail: str, errors: Any = None) -> JsonResponse:
    return JsonResponse(error_body(code, detail, errors), status=status)


def outage(exc: BaseException) -> tuple[dict[str, Any], dict[str, str]] | None:
    """(503 body, headers) when ``exc`` means a dependency is unavailable, else None."""
    if not isinstance(exc, (ServiceUnavailable, *OUTAGE_ERRORS)):
        return None
    code = exc.code if isinstance(exc, ServiceUnavailable) else "service_unavailable"
    retry_after = exc.retry_after if isinstance(exc, ServiceUnavailable) else ServiceUnavailable.retry_after
    SERVICE_UNAVAILABLE.labels(reason=code if isinstance(exc, ServiceUnavailable) else type(exc).__name__).inc()
    logger.warning("Answered 503: %s: %s", type(exc).__name__, str(exc).strip().splitlines()[0] if str(exc) else "")
    return error_body(code, outage_detail(exc)), {"Retry-After": str(retry_after)}


def outage_response(exc: BaseException) -> JsonResponse | None:
    """The JSON 503 for errors raised outside DRF views (middleware, plain Django views)."""
    answer = outage(exc)
    if answer is None:
        return None
    body, headers = answer
    return JsonResponse(body, status=503, headers=headers)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("too_large", "The request body is larger than the server accepts."), status=413)
    answer = outage(exc)
    if answer is not None:
        body, headers = answer
        return Response(body, status=503, headers=headers)
    if isinstance(exc, InputError):
        exc = exceptions.ValidationError(exc.errors)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
        return Response(error_body("server_error", "The server failed to handle this request."), status=500)
    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body("invalid", "The request has invalid fields.", _normalise(exc.detail))
    else:
        data = response.data
        detail = data.get("detail", "") if isinstance(data, dict) else data
        code = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        if isinstance(code, dict):  # simplejwt nests its code: {"detail": ..., "code": ...}
            code = data.get("code") if isinstance(data, dict) and isinstance(data.get("code"), str) else "error"
        if not isinstance(code, str):
            code = "error"
        response.data = error_body(code, str(detail))
    return response


def _normalise(detail: Any) -> Any:
    """DRF nests ErrorDetail objects; make them plain strings, and bare lists non-field errors."""
    if isinstance(detail, dict):
        return {str(k): _normalise(v) for k, v in detail.items()}
    if isinstance(detail, list):
        items = [_normalise(v) for v in detail]
        return items
    return str(detail)


# Django's own handlers, used for errors raised outside DRF views (unknown URLs, CSRF, size caps).


def handler400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    if isinstance(exception, RequestDataTooBig):
        return json_error(413, "too_large", "The request body is larger than the server accepts.")
    return json_error(400, "bad_request", "The request could not be understood.")


def handler403(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return json_error(403, "permission_denied", "You do not have permission to perform this action.")


def handler404(request: HttpRequest, exception: Exception | None = None) -> Any:
    if wants_json(request):
        return json_error(404, "not_found", f"No resource at {request.path}.")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)  # type: ignore[arg-type]


def handler500(request: HttpRequest) -> Any:
    # Django calls this from inside its exception handling, so the error is still at hand.
    response = outage_response(sys.exc_info()[1]) if sys.exc_info()[1] is not None else None
    if response is not None:
        return response
    if wants_json(request):
        return json_error(500, "server_error", "The server failed to handle this request.")
    from django.views.defaults import server_error

    return server_error(request)
