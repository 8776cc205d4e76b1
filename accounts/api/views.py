from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.views import TokenBlacklistView, TokenObtainPairView

from accounts.api.serializers import ApiKeySerializer, AuditLogEntrySerializer, RevokeSerializer, WhoAmISerializer
from accounts.context import actor_for_request
from accounts.login_policy import LOCKED_OUT_MESSAGE, audit_sign_in, retry_after_seconds
from accounts.models import Department
from accounts.selectors import api_key_list, audit_log_list
from accounts.services import api_key_revoke
from churn_infra.exceptions import error_body


class TokenObtainView(TokenObtainPairView):
    """Username and password for an access and a refresh token; every attempt is audited, and
    the sign-in lock-out policy (accounts.login_policy) answers 429 with Retry-After."""

    permission_classes = (AllowAny,)

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        username = request.data.get("username") if isinstance(request.data, dict) else None
        try:
            response = super().post(request, *args, **kwargs)
        except Exception:
            locked = bool(getattr(request, "axes_locked_out", False))
            audit_sign_in(request, username, ok=False, reason="locked out" if locked else "")
            if locked:
                return Response(error_body("locked_out", LOCKED_OUT_MESSAGE), status=429,
                                headers={"Retry-After": str(retry_after_seconds())})
            raise
        audit_sign_in(request, username, ok=response.status_code == 200)
        return response


class LogoutView(TokenBlacklistView):
    """Blacklists the given refresh token so it can no longer be rotated."""

    permission_classes = (AllowAny,)


class WhoAmIView(APIView):
    @extend_schema(responses=WhoAmISerializer)
    def get(self, request: Request) -> Response:
        actor = actor_for_request(request)
        department = Department.objects.filter(pk=actor.department_id).values_list("name", flat=True).first()
        return Response({"actor": actor.label, "department": department, "scopes": sorted(actor.scopes)})


class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The caller's department's API keys (metadata only: secrets are never readable).

    Reading and revoking keys is key management: it needs the dedicated ``keys:manage`` scope,
    so that a key with data scopes (customers:write, ...) cannot revoke its department's keys.
    """

    serializer_class = ApiKeySerializer
    required_scopes = {"GET": "keys:manage", "POST": "keys:manage"}

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return api_key_list(actor=actor_for_request(self.request))

    @extend_schema(request=RevokeSerializer, responses=ApiKeySerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        key = self.get_object()
        body = RevokeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        key = api_key_revoke(key_id=key.pk, actor=actor_for_request(request), reason=body.validated_data["reason"])
        return Response(ApiKeySerializer(key).data, status=status.HTTP_200_OK)


class AuditLogViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The caller's department's audit trail, newest first."""

    serializer_class = AuditLogEntrySerializer
    required_scopes = {"GET": "customers:read"}

    def get_queryset(self):  # type: ignore[no-untyped-def]
        qs = audit_log_list(actor=actor_for_request(self.request))
        action_name = self.request.query_params.get("action")
        return qs.filter(action=action_name) if action_name else qs
