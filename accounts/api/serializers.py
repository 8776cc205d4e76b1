from __future__ import annotations

from rest_framework import serializers

from accounts.models import ApiKey, AuditLogEntry
from accounts.services import public_actor_label


class PublicActorLabelField(serializers.CharField):
    """An actor label in a company-wide answer: ``api-key`` or ``user``, never the key's name or ids."""

    def __init__(self, **kwargs):  # type: ignore[no-untyped-def]
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def to_representation(self, value: str) -> str:
        return public_actor_label(str(value))


class ApiKeySerializer(serializers.ModelSerializer):
    department = serializers.CharField(source="department.name")
    status = serializers.CharField()

    class Meta:
        model = ApiKey
        fields = (
            "id",
            "name",
            "department",
            "prefix",
            "scopes",
            "ip_allowlist",
            "rate_limit_per_minute",
            "status",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "created_at",
        )
        read_only_fields = fields


class RevokeSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class AuditLogEntrySerializer(serializers.ModelSerializer):
    department = serializers.CharField(source="department.name", default=None, allow_null=True)

    class Meta:
        model = AuditLogEntry
        fields = (
            "id",
            "created_at",
            "actor_label",
            "department",
            "action",
            "object_type",
            "object_id",
            "ip_address",
            "request_id",
            "outcome",
            "details",
        )
        read_only_fields = fields


class WhoAmISerializer(serializers.Serializer):
    actor = serializers.CharField()
    department = serializers.CharField(allow_null=True)
    scopes = serializers.ListField(child=serializers.CharField())
