"""One sign-in lock-out policy for the admin, the staff pages and POST /api/v1/auth/token/.

django-axes counts failed sign-ins per account and address and per address (its
AXES_LOCKOUT_PARAMETERS), from the one client address rule (TRUSTED_PROXY_COUNT). After
LOGIN_MAX_FAILURES failures within LOGIN_LOCKOUT_MINUTES the account at that address, or the
whole address, is refused with 429 and Retry-After; every further attempt while locked starts
the cool-off again (AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT), so hammering backs off for
good. Each lock-out is audited (auth.lockout) and counted in churn_login_lockouts_total{via}.
The hooks below are what the settings point axes at.
"""

from __future__ import annotations

import math
from typing import Any

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.models import AuditOutcome
from accounts.services import Actor, actor_for_user, audit_record
from churn_infra.client_address import client_address
from churn_infra.exceptions import json_error
from churn_infra.metrics import LOGIN_LOCKOUTS

LOCKED_OUT_MESSAGE = "Too many failed sign-ins. Try again later."


def sign_in_path(request: Any) -> str:
    """admin, staff or token: which of the three sign-ins a request is."""
    path = getattr(request, "path", "") or ""
    if path.startswith("/admin/"):
        return "admin"
    if path.startswith("/api/"):
        return "token"
    return "staff"


def client_ip(request: Any) -> str | None:
    """AXES_CLIENT_IP_CALLABLE: the address every other limit uses."""
    return client_address(request.META)


def failure_limit(request: Any, credentials: Any) -> int:
    """AXES_FAILURE_LIMIT: read at each attempt, so LOGIN_MAX_FAILURES can be changed at run time."""
    return settings.LOGIN_MAX_FAILURES


def retry_after_seconds() -> int:
    return max(1, math.ceil(settings.AXES_COOLOFF_TIME.total_seconds()))


def lockout_response(request: HttpRequest, original_response: Any = None, credentials: Any = None) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: 429 with Retry-After; JSON on the API, the sign-in page elsewhere."""
    if sign_in_path(request) == "token":
        response = json_error(429, "locked_out", LOCKED_OUT_MESSAGE)
    elif sign_in_path(request) == "staff":
        response = render(request, "registration/login.html", {"locked_out": True, "message": LOCKED_OUT_MESSAGE},
                          status=429)
    else:
        response = HttpResponse(LOCKED_OUT_MESSAGE, status=429, content_type="text/plain")
    response["Retry-After"] = str(retry_after_seconds())
    return response


# The audit entries' "via", as they were before the three sign-ins shared one policy.
_AUDIT_VIA = {"admin": "admin", "staff": "session", "token": "token"}


def audit_sign_in(request: Any, username: Any, *, ok: bool, reason: str = "") -> None:
    """One audit entry per sign-in attempt, whichever of the three paths it came through."""
    name = str(username)[:150] if isinstance(username, str) else ""
    user = get_user_model().objects.filter(username=name).first() if name else None
    ip = client_ip(request)
    via = _AUDIT_VIA[sign_in_path(request)]
    audit_record(
        actor=actor_for_user(user, ip=ip) if user is not None else Actor(ip=ip),
        action="auth.login",
        object_type="auth.user",
        object_id=user.pk if user else "",
        outcome=AuditOutcome.SUCCESS if ok else AuditOutcome.DENIED,
        details={"via": via} if ok else {"via": via, "username": name, "reason": reason or "wrong credentials"},
    )


def on_locked_out(sender: Any, request: Any = None, username: Any = None, ip_address: Any = None, **_: Any) -> None:
    """axes' user_locked_out signal: audited and counted."""
    via = sign_in_path(request)
    LOGIN_LOCKOUTS.labels(via=via).inc()
    name = str(username)[:150] if isinstance(username, str) else ""
    user = get_user_model().objects.filter(username=name).first() if name else None
    audit_record(
        actor=actor_for_user(user, ip=ip_address) if user is not None else Actor(ip=ip_address),
        action="auth.lockout",
        object_type="auth.user",
        object_id=user.pk if user else "",
        outcome=AuditOutcome.DENIED,
        details={"via": via, "username": name, "minutes": settings.AXES_COOLOFF_TIME.total_seconds() / 60},
    )


def on_admin_login_failed(sender: Any, credentials: Any = None, request: Any = None, **_: Any) -> None:
    """Admin sign-ins are Django's own view: audit their failures here (staff and token audit theirs)."""
    if request is not None and sign_in_path(request) == "admin":
        audit_sign_in(request, (credentials or {}).get("username"), ok=False)


def on_admin_logged_in(sender: Any, request: Any = None, user: Any = None, **_: Any) -> None:
    if request is not None and sign_in_path(request) == "admin" and user is not None:
        audit_sign_in(request, user.get_username(), ok=True)


class LoginPolicyBackend(AxesStandaloneBackend):
    """axes' lock-out check, for sign-ins that come with a request (the three web sign-ins).

    An authenticate() call without a request (the test client's login(), a shell) has no address
    to count or lock; axes would raise for it, so it is passed on to the next backend unchecked.
    """

    def authenticate(self, request: Any, username: str | None = None, password: str | None = None,
                     **kwargs: Any) -> Any:
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
