"""The daily digest: each staff member's new assignments, overdue follow-ups and customers whose risk rose.

Sent through Django's e-mail backend (the console backend in development prints it), once a day by
beat, to staff members with open follow-ups who did not opt out (/staff/settings/).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.models import AuditLogEntry
from accounts.services import actor_for_user
from campaigns.models import OPEN_FOLLOW_UP_STATUSES, CampaignStatus, CampaignTarget, DigestPreference, TargetGroup
from campaigns.selectors.access import campaign_target_list, staff_user_ids
from campaigns.selectors.follow_ups import with_current_risk
from predictions.models import RiskLevel

LEVEL_RANK = {level: rank for rank, level in enumerate(RiskLevel.values)}
DIGEST_ITEMS = 20  # rows per section; the e-mail links to the full list


@dataclass(frozen=True)
class Digest:
    user: Any
    since: datetime
    new_assignments: list[CampaignTarget]
    overdue: list[CampaignTarget]
    risk_rose: list[CampaignTarget]

    @property
    def empty(self) -> bool:
        return not (self.new_assignments or self.overdue or self.risk_rose)


def digest_for(*, user: Any, since: datetime, today: Any = None) -> Digest:
    today = today or timezone.localdate()
    actor = actor_for_user(user)
    mine = (
        campaign_target_list(actor=actor)
        .filter(assignee=user, group=TargetGroup.TREATMENT, follow_up_status__in=OPEN_FOLLOW_UP_STATUSES,
                campaign__status=CampaignStatus.ACTIVE)
        .select_related("campaign", "customer")
    )  # fmt: skip
    assigned_ids = set(
        mine.filter(created_at__gte=since).values_list("pk", flat=True)
    ) | _assigned_since(user=user, since=since)
    new = list(mine.filter(pk__in=assigned_ids).order_by("due_date", "pk")[:DIGEST_ITEMS])
    overdue = list(mine.filter(due_date__lt=today).order_by("due_date", "pk")[:DIGEST_ITEMS])
    rose = [
        t for t in with_current_risk(mine).order_by("-qualifying_probability", "pk")
        if getattr(t, "current_risk_level", None)
        and LEVEL_RANK.get(t.current_risk_level, -1) > LEVEL_RANK.get(t.qualifying_risk_level, -1)
    ][:DIGEST_ITEMS]
    return Digest(user=user, since=since, new_assignments=new, overdue=overdue, risk_rose=rose)


def _assigned_since(*, user: Any, since: datetime) -> set[int]:
    """Targets given to this user since then, read from the audit log of assignments."""
    ids = AuditLogEntry.objects.filter(
        created_at__gte=since,
        object_type="campaigns.campaigntarget",
        action__in=("campaign_target.assign", "campaign_target.update"),
        details__changes__assignee__1=user.get_username(),
    ).values_list("object_id", flat=True)
    return {int(pk) for pk in ids if str(pk).isdigit()}


def digests_send(*, now: datetime | None = None) -> int:
    """Send every due digest; returns how many e-mails went out. A digest with nothing in it is not sent."""
    now = now or timezone.now()
    sent = 0
    users = get_user_model().objects.filter(pk__in=staff_user_ids(), is_active=True).exclude(email="")
    for user in users:
        with transaction.atomic():
            pref, _ = DigestPreference.objects.select_for_update().get_or_create(user=user)
            if not pref.daily_digest:
                continue
            if pref.last_sent_at is not None and now - pref.last_sent_at < timedelta(hours=20):
                continue  # already sent today: beat or a retry running twice sends once
            digest = digest_for(user=user, since=pref.last_sent_at or now - timedelta(days=1))
            if digest.empty:
                continue
            context = {"d": digest, "base_url": settings.STAFF_BASE_URL}
            send_mail(
                subject=f"Your follow-ups: {len(digest.new_assignments)} new, {len(digest.overdue)} overdue, "
                f"{len(digest.risk_rose)} at higher risk",
                message=render_to_string("staff/email/digest.txt", context),
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=[user.email],
            )
            pref.last_sent_at = now
            pref.save(update_fields=["last_sent_at", "updated_at"])
            sent += 1
    return sent


def digest_preference_set(*, user: Any, enabled: bool) -> DigestPreference:
    pref, _ = DigestPreference.objects.update_or_create(user=user, defaults={"daily_digest": enabled})
    return pref
