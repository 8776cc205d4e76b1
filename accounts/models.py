"""Departments, their members and API keys, and the audit log."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

SCOPE_CHOICES = [
    ("customers:read", "Read customers and predictions"),
    ("customers:write", "Create and update customers, record outcomes"),
    ("predictions:write", "Score customers"),
    ("ingestion:write", "Upload files and run data sources"),
    ("campaigns:write", "Run retention campaigns"),
    ("models:manage", "Train, promote and roll back models"),
    ("tiers:manage", "Read and edit the risk tiers' recommendations and offers"),
    ("customers:erase", "Erase a customer's personal data (DELETE customers/{id}/)"),
    ("keys:manage", "List and revoke the department's API keys"),
]
ALL_SCOPES = frozenset(code for code, _ in SCOPE_CHOICES)
# Scopes a new key gets only when asked for by name.
NON_DEFAULT_SCOPES = frozenset({"models:manage", "tiers:manage", "customers:erase", "keys:manage"})
DEFAULT_KEY_SCOPES = sorted(ALL_SCOPES - NON_DEFAULT_SCOPES)


def validate_ip_allowlist(value: list[str]) -> None:
    if not isinstance(value, list):
        raise ValidationError("Must be a list of IP addresses or CIDR networks.")
    for entry in value:
        try:
            ipaddress.ip_network(str(entry), strict=False)
        except ValueError as exc:
            raise ValidationError(f"{entry!r} is not an IP address or CIDR network.") from exc


def validate_scopes(value: list[str]) -> None:
    unknown = set(value) - ALL_SCOPES
    if unknown:
        raise ValidationError(f"Unknown scopes: {', '.join(sorted(unknown))}.")


class Department(models.Model):
    """A team of the business that owns API keys, uploads, jobs and campaigns."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    key_rate_limit_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per minute for each of this department's API keys; empty: default."
    )
    user_rate_limit_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per minute for each member using JWT; empty: default."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """Which department a user acts for."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership")
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="members")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["department__name", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} in {self.department}"


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def usable(self, at=None):  # type: ignore[no-untyped-def]
        at = at or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=at)
        )


class ApiKey(models.Model):
    """A department's API key. Only a salted SHA-512 of the secret is stored; the key is shown once."""

    department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    salt = models.CharField(max_length=32, editable=False)
    secret_hash = models.CharField(max_length=128, editable=False)
    scopes = models.JSONField(default=list, validators=[validate_scopes])
    ip_allowlist = models.JSONField(
        default=list, blank=True, validators=[validate_ip_allowlist], help_text="Addresses or CIDRs; empty: any."
    )
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Overrides the department's limit for this key."
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=200, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["department__name", "name", "pk"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def is_expired(self, at=None) -> bool:  # type: ignore[no-untyped-def]
        return self.expires_at is not None and self.expires_at <= (at or timezone.now())

    @property
    def status(self) -> str:
        if self.is_revoked:
            return "revoked"
        if self.is_expired():
            return "expired"
        return "active"


class AuditOutcome(models.TextChoices):
    SUCCESS = "success", "Success"
    FAILURE = "failure", "Failure"
    DENIED = "denied", "Denied"


class AuditLogEntry(models.Model):
    """Who did what to which object, when, from where, and how it ended. Never edited."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor_label = models.CharField(max_length=200, help_text="The actor as it was at the time, kept after deletes.")
    department = models.ForeignKey(Department, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=100, db_index=True)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=100, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    outcome = models.CharField(max_length=10, choices=AuditOutcome.choices, default=AuditOutcome.SUCCESS)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object_idx")]

    def __str__(self) -> str:
        return (
            f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.object_type}:{self.object_id}"
        )
