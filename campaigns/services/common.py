"""What every campaign write shares: its errors, the visibility check, the campaign lock, the bulk audit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.utils import timezone

from accounts.models import AuditLogEntry
from accounts.services import Actor
from campaigns.models import (
    RetentionCampaign,
)
from churn_infra.errors import InputError

# Rows per INSERT when enrolling: 10,000 targets go in ten statements, each well under a second.
ENROL_BATCH_SIZE = 1000


class CampaignError(InputError):
    """A campaign request a caller can correct: ``errors`` maps field names to messages."""


class NotVisible(Exception):
    """The actor's department does not own this campaign; callers answer 404, never 403."""


def _require_visible(actor: Actor, department_id: int) -> None:
    if not actor.can_see_department(department_id):
        raise NotVisible(department_id)


def _lock_campaign(campaign_id: int, actor: Actor) -> RetentionCampaign:
    campaign = RetentionCampaign.objects.select_for_update().filter(pk=campaign_id).first()
    if campaign is None:
        raise NotVisible(campaign_id)
    _require_visible(actor, campaign.department_id)
    return campaign


def _audit_many(
    *, actor: Actor, action: str, department_id: int, entries: Sequence[tuple[int, dict[str, Any]]]
) -> None:
    """One audit row per changed target, written in one statement (bulk changes touch thousands)."""
    now = timezone.now()
    AuditLogEntry.objects.bulk_create(
        [
            AuditLogEntry(
                created_at=now,
                actor_user_id=actor.user_id,
                actor_api_key_id=actor.api_key_id,
                actor_label=actor.label[:200],
                department_id=department_id,
                action=action,
                object_type="campaigns.campaigntarget",
                object_id=str(object_id),
                ip_address=actor.ip,
                request_id=(actor.request_id or "")[:64],
                details=details,
            )
            for object_id, details in entries
        ],
        batch_size=ENROL_BATCH_SIZE,
    )
