"""Session sign-in for the staff pages: audited, and under the one lock-out policy (accounts.login_policy)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.views import LoginView
from django.http import HttpResponse

from accounts.login_policy import audit_sign_in


class StaffLoginView(LoginView):
    """Django's LoginView, plus an audit entry per attempt. Lock-outs (429 with Retry-After after
    LOGIN_MAX_FAILURES failures) are django-axes', shared with the admin and the token endpoint."""

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        audit_sign_in(self.request, form.get_user().get_username(), ok=True)
        return response

    def form_invalid(self, form: Any) -> HttpResponse:
        locked = bool(getattr(self.request, "axes_locked_out", False))
        audit_sign_in(self.request, form.data.get("username", ""), ok=False,
                      reason="locked out" if locked else "wrong credentials")
        return super().form_invalid(form)
