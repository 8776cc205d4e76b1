"""What operators see of each request: adoption and failed-authentication metrics, the /metrics
endpoint, and probes that answer whatever Host header a load balancer or kubelet sends.

``ApiMetricsMiddleware`` counts every /api/ response in churn_api_requests_total by the caller's
department and key, and every rejected credential (401, or a key used from a forbidden address)
in churn_auth_failures_total by the error code the client was given. It runs outside DRF so that
it also sees responses produced before a view (body too large, unknown URL).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from churn_infra.client_address import metrics_refusal
from churn_infra.metrics import API_REQUESTS, AUTH_FAILURES

PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# Codes that mean "these credentials were refused", as the error body names them.
AUTH_FAILURE_CODES_403 = frozenset({"ip_not_allowed"})
_DEPARTMENT_CACHE_SECONDS = 300.0
_department_names: dict[int, tuple[float, str]] = {}


def _department_name(department_id: int | None) -> str:
    """A department's name for a metric label, remembered per process (renames show within minutes)."""
    if department_id is None:
        return "none"
    now = time.monotonic()
    cached = _department_names.get(department_id)
    if cached is not None and now - cached[0] < _DEPARTMENT_CACHE_SECONDS:
        return cached[1]
    from accounts.models import Department

    name = Department.objects.filter(pk=department_id).values_list("name", flat=True).first() or "unknown"
    _department_names[department_id] = (now, name)
    return name


def caller_labels(request: HttpRequest) -> tuple[str, str]:
    """(department, api_key) labels for the caller DRF authenticated on this request.

    JWT and session callers are labelled "jwt"/"session" rather than by user name, which would
    give one series per person.
    """
    # DRF copies the authenticated caller onto the Django request; before DRF runs (or when the
    # request never reached a DRF view) it is Django's lazy session user or absent.
    user = request.__dict__.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return "none", "anonymous"
    department_name = getattr(user, "department_name", None)
    if department_name is not None:  # accounts.authentication.ApiKeyCaller
        return department_name, str(user.name)
    membership = getattr(user, "membership", None) if hasattr(user, "membership") else None
    kind = "session" if request.__dict__.get("auth") is None else "jwt"
    return _department_name(membership.department_id if membership is not None else None), kind


def _error_code(response: HttpResponse) -> str:
    data = getattr(response, "data", None)
    if isinstance(data, dict) and isinstance(data.get("code"), str):
        return data["code"]
    return "unknown"


class ApiMetricsMiddleware:
    """Counts API requests per department and key, and rejected credentials per reason."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path_info.startswith("/api/"):
            self.record(request, response)
        return response

    @staticmethod
    def record(request: HttpRequest, response: HttpResponse) -> None:
        department, api_key = caller_labels(request)
        API_REQUESTS.labels(department=department, api_key=api_key, status=str(response.status_code)).inc()
        refused = response.status_code == 401 or (
            response.status_code == 403 and _error_code(response) in AUTH_FAILURE_CODES_403
        )
        if refused:
            AUTH_FAILURES.labels(reason=_error_code(response)).inc()


def _count_login_failure(sender: Any, credentials: dict[str, Any], request: Any = None, **_: Any) -> None:
    """Failed logins on the admin and staff pages; API logins are counted from their 401."""
    path = getattr(request, "path", "") or ""
    if not path.startswith("/api/"):
        AUTH_FAILURES.labels(reason="login_failed").inc()


user_login_failed.connect(_count_login_failure, dispatch_uid="churn_platform.observability.login_failed")


class ProbeMiddleware:
    """Serves /healthz, /readyz and /metrics before Host validation and the HTTPS redirect.

    Kubelets and Prometheus address pods by IP, so their Host header is never one of
    DJANGO_ALLOWED_HOSTS; these views build no URLs, so the Host check protects nothing there.
    Answering here also keeps probes and scrapes out of django-prometheus's per-view request
    metrics, which would otherwise be dominated by them.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info not in PROBE_PATHS:
            return self.get_response(request)
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return self.get_response(request)
        return match.func(request, *match.args, **match.kwargs)


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition of every process's metrics plus the scrape-time ones.

    Served only to METRICS_ALLOWED_NETWORKS and, when METRICS_TOKEN is set, to scrapes sending it
    as a bearer token (churn_infra.client_address.metrics_refusal).
    """
    from churn_platform.collectors import scrape_registry

    refused = metrics_refusal(request.META)
    if refused is not None:
        response = HttpResponse(refused[1], status=refused[0], content_type="text/plain")
        if refused[0] == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(scrape_registry()), content_type=CONTENT_TYPE_LATEST)
