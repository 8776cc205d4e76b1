"""Request ids, and JSON instead of HTML for errors Django raises before DRF sees the request."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse

from churn_platform.exceptions import json_error, wants_json
from churn_platform.logging import set_request_id

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{8,64}")


class RequestIdMiddleware:
    """Accepts a sane X-Request-ID from the caller or makes one, and echoes it on the response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        set_request_id(request_id)
        try:
            response = self.get_response(request)
        finally:
            set_request_id(None)
        response["X-Request-ID"] = request_id
        return response


class ApiErrorMiddleware:
    """Under /api/, a body over the size cap is a JSON 413, not Django's HTML 400.

    DRF reads the body as a stream and so skips Django's DATA_UPLOAD_MAX_MEMORY_SIZE check; the
    declared length is checked here instead, before anything is read. File uploads (multipart)
    have their own, larger cap, enforced by the upload endpoint.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and request.path.startswith("/api/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return json_error(400, "bad_request", "The Content-Length header is not a number.")
            is_upload = request.META.get("CONTENT_TYPE", "").startswith("multipart/")
            if length > limit and not is_upload:
                return json_error(413, "too_large", f"The request body is {length} bytes; the limit is {limit} bytes.")
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, RequestDataTooBig) and wants_json(request):
            return json_error(413, "too_large", "The request body is larger than the server accepts.")
        return None


class ApiNoStoreMiddleware:
    """Every answer under /api/ carries ``Cache-Control: no-store``: customer data, scores and
    keys' metadata must not be kept by a browser, a proxy or a shared cache (issue 11, finding 8).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith("/api/"):
            response["Cache-Control"] = "no-store"
        return response
