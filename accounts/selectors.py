"""Reads for accounts, always scoped to what the actor may see."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import ApiKey, AuditLogEntry
from accounts.services import Actor


def api_key_list(*, actor: Actor) -> QuerySet[ApiKey]:
    qs = ApiKey.objects.select_related("department")
    return qs if actor.is_superuser else qs.filter(department_id=actor.department_id)


def audit_log_list(*, actor: Actor) -> QuerySet[AuditLogEntry]:
    qs = AuditLogEntry.objects.select_related("department")
    return qs if actor.is_superuser else qs.filter(department_id=actor.department_id)
