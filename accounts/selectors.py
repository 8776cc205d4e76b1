"""Reads for accounts, always scoped to what the actor may see."""

from __future__ import annotations

from typing import TypeVar

from django.db.models import Model, QuerySet

from accounts.models import ApiKey, AuditLogEntry
from accounts.services import Actor

M = TypeVar("M", bound=Model)


def department_scoped(rows: QuerySet[M], *, actor: Actor, field: str = "department_id") -> QuerySet[M]:
    """The rows of the actor's department; superusers see all, a caller without a department none.

    A caller without a department must not match the rows that have none (failed sign-ins,
    company-wide jobs): ``filter(department_id=None)`` would select exactly those.
    """
    if actor.is_superuser:
        return rows
    if actor.department_id is None:
        return rows.none()
    return rows.filter(**{field: actor.department_id})


def api_key_list(*, actor: Actor) -> QuerySet[ApiKey]:
    return department_scoped(ApiKey.objects.select_related("department"), actor=actor)


def audit_log_list(*, actor: Actor) -> QuerySet[AuditLogEntry]:
    return department_scoped(AuditLogEntry.objects.select_related("department"), actor=actor)
