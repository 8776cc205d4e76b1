"""Request ids, load shedding, and JSON instead of HTML for errors Django raises before DRF sees
the request (size caps, and outages: a database or cache error anywhere is a 503 with Retry-After)."""

from __future__ import annotations

import logging
import re
import socket
import struct
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse

from churn_infra.exceptions import json_error, outage_response, wants_json
from churn_infra.logging import set_request_id
from churn_infra.metrics import REQUESTS_SHED

logger = logging.getLogger(__name__)

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


class OutageMiddleware:
    """A database or cache outage raised by a view outside DRF (admin, staff pages) is a 503 with
    Retry-After: JSON for API clients, a short text page for people. Errors raised in middleware
    reach handler500, which answers the same way."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        response = outage_response(exception)
        if response is None or wants_json(request):
            return response
        page = HttpResponse(
            "The service is briefly unavailable. Please try again in a few seconds.\n",
            status=503, content_type="text/plain; charset=utf-8",
        )
        page["Retry-After"] = response["Retry-After"]
        return page


# struct tcp_info (linux/tcp.h): eight one-byte fields, then u32s; tcpi_last_data_recv is the
# twelfth u32: milliseconds since the last data arrived on the connection.
_TCP_INFO_LAST_DATA_RECV = struct.Struct("=52xI")
_TCP_INFO = getattr(socket, "TCP_INFO", None)
_SHED_EXEMPT = ("/healthz", "/metrics")


def kernel_wait_seconds(sock: object) -> float | None:
    """Seconds since the request's last bytes reached the kernel, from TCP_INFO (Linux); None elsewhere.

    A sync gunicorn worker accepts a connection only when it is free, so a request queued in the
    listen backlog has been sitting in the kernel's buffer for about this long when it is read.
    """
    if _TCP_INFO is None or not hasattr(sock, "getsockopt"):
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 104)  # type: ignore[attr-defined]
    except OSError:
        return None
    if len(raw) < _TCP_INFO_LAST_DATA_RECV.size:
        return None
    return _TCP_INFO_LAST_DATA_RECV.unpack_from(raw)[0] / 1000.0


def header_wait_seconds(value: str, now: float) -> float | None:
    """Seconds since the ingress received the request, from X-Request-Start (``t=`` seconds,
    milliseconds or microseconds since the epoch, as nginx, HAProxy and Heroku write it)."""
    value = value.strip().removeprefix("t=")
    try:
        started = float(value)
    except ValueError:
        return None
    if started > 1e14:  # microseconds
        started /= 1e6
    elif started > 1e11:  # milliseconds
        started /= 1e3
    return max(0.0, now - started)


class LoadSheddingMiddleware:
    """Answer 503 with Retry-After, without doing the work, to a request that waited in the queue
    longer than REQUEST_QUEUE_TIMEOUT_SECONDS: its client has most likely given up, and working
    through such a backlog only makes every later request late as well.

    The wait is the larger of two measures: the ingress's X-Request-Start header, and the time
    the request's bytes sat in this server's socket buffer (TCP_INFO of gunicorn's socket).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.bound = float(getattr(settings, "REQUEST_QUEUE_TIMEOUT_SECONDS", 0) or 0)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self.bound > 0 and not request.path.startswith(_SHED_EXEMPT):
            waited = self.queue_wait(request)
            if waited is not None and waited > self.bound:
                return self.shed(request, waited)
        return self.get_response(request)

    @staticmethod
    def queue_wait(request: HttpRequest) -> float | None:
        waits = [kernel_wait_seconds(request.META.get("gunicorn.socket"))]
        header = request.META.get("HTTP_X_REQUEST_START")
        if header:
            waits.append(header_wait_seconds(header, time.time()))
        known = [w for w in waits if w is not None]
        return max(known) if known else None

    def shed(self, request: HttpRequest, waited: float) -> HttpResponse:
        REQUESTS_SHED.inc()
        logger.warning("Shed %s %s after %.1f s in the queue", request.method, request.path, waited)
        retry_after = str(max(1, round(self.bound)))
        detail = f"The server is overloaded: this request waited {waited:.1f} s in the queue. Try again shortly."
        if wants_json(request):
            response: HttpResponse = json_error(503, "service_unavailable", detail)
        else:
            response = HttpResponse(detail + "\n", status=503, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = retry_after
        return response


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
