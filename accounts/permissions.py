from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.permissions import BasePermission

from accounts.context import actor_for_request


class HasScope(BasePermission):
    """Authenticated callers only; a view's ``required_scopes`` maps HTTP methods to the scope needed.

    A view may instead define ``required_scope(request)`` for per-action rules. Superusers pass.
    """

    def has_permission(self, request: Any, view: Any) -> bool:
        if request.user is None or not getattr(request.user, "is_authenticated", False):
            raise exceptions.NotAuthenticated()
        if hasattr(view, "required_scope"):
            scope = view.required_scope(request)
        else:
            scope = getattr(view, "required_scopes", {}).get(request.method)
        if scope is None:
            return True
        actor = actor_for_request(request)
        if actor.is_superuser or scope in actor.scopes:
            return True
        raise exceptions.PermissionDenied(f"This caller lacks the {scope!r} scope.", code="missing_scope")
