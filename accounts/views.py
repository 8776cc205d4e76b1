"""Session sign-in for the staff pages: audited, and slowed down after repeated failures."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

from accounts.authentication import client_ip
from accounts.models import AuditOutcome
from accounts.services import Actor, actor_for_user, audit_record

FAILURE_WINDOW_SECONDS = 15 * 60


def _failure_key(request: HttpRequest) -> str:
    return f"login-failures:{client_ip(request)}"


class StaffLoginView(LoginView):
    """Django's LoginView, plus an audit entry per attempt and a lock-out per address after
    LOGIN_MAX_FAILURES failures within 15 minutes (answered 429 until the window passes)."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        failures = cache.get(_failure_key(request), 0)
        if failures >= settings.LOGIN_MAX_FAILURES:
            form = self.get_form()
            form.errors.clear()
            form.add_error(None, "Too many failed sign-ins from your address. Try again in 15 minutes.")
            self._audit(request, form.data.get("username", ""), AuditOutcome.DENIED, "locked out")
            response = self.render_to_response(self.get_context_data(form=form, locked_out=True))
            response.status_code = 429
            response["Retry-After"] = str(FAILURE_WINDOW_SECONDS)
            return response
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        cache.delete(_failure_key(self.request))
        audit_record(
            actor=actor_for_user(form.get_user(), ip=client_ip(self.request)),
            action="auth.login",
            object_type="auth.user",
            object_id=form.get_user().pk,
            details={"via": "session"},
        )
        return response

    def form_invalid(self, form: Any) -> HttpResponse:
        key = _failure_key(self.request)
        if not cache.add(key, 1, FAILURE_WINDOW_SECONDS):
            try:
                cache.incr(key)
            except ValueError:
                cache.add(key, 1, FAILURE_WINDOW_SECONDS)
        self._audit(self.request, form.data.get("username", ""), AuditOutcome.DENIED, "wrong credentials")
        return super().form_invalid(form)

    @staticmethod
    def _audit(request: HttpRequest, username: str, outcome: str, why: str) -> None:
        user = get_user_model().objects.filter(username=username).first() if username else None
        ip = client_ip(request)
        audit_record(
            actor=actor_for_user(user, ip=ip) if user is not None else Actor(ip=ip),
            action="auth.login",
            object_type="auth.user",
            object_id=user.pk if user else "",
            outcome=outcome,
            details={"via": "session", "username": str(username)[:150], "reason": why},
        )
