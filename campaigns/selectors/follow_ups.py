"""Follow-up work lists: filters, sorts and saved views of the targets staff work on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from accounts.services import Actor
from campaigns.models import (
    OPEN_FOLLOW_UP_STATUSES,
    CampaignStatus,
    CampaignTarget,
    FollowUpStatus,
    SavedView,
    TargetGroup,
    TargetOutcome,
)
from campaigns.selectors.access import (
    campaign_target_list,
)
from predictions.models import Prediction, RiskLevel

HIGH_RISK_LEVELS = (RiskLevel.HIGH, RiskLevel.CRITICAL)
HIGH_OR_CRITICAL = "high_critical"  # the follow-up filter's value for both levels together

# Saved views everyone has: (slug, name, query string of the follow-up list).
BUILT_IN_VIEWS = (
    ("my-overdue", "My overdue", "assignee=me&status=open&due=overdue&sort=due"),
    (
        "unassigned-high-risk",
        "Unassigned high risk",
        "assignee=unassigned&status=open&risk_level=high_critical&sort=risk",
    ),
)


def with_current_risk(qs: QuerySet[CampaignTarget]) -> QuerySet[CampaignTarget]:
    """Adds each target's customer's latest probability and risk level (two indexed subqueries per row)."""
    latest = Prediction.objects.filter(customer_id=OuterRef("customer__customer_id")).order_by("-created_at", "-pk")
    return qs.annotate(
        current_probability=Subquery(latest.values("churn_probability")[:1]),
        current_risk_level=Subquery(latest.values("risk_level")[:1]),
    )


FOLLOW_UP_SORTS = {
    "due": ("due_date", "-qualifying_probability", "pk"),
    "-due": ("-due_date", "-qualifying_probability", "pk"),
    "risk": ("-qualifying_probability", "due_date", "pk"),
    "customer": ("customer__customer_id", "pk"),
    "status": ("follow_up_status", "due_date", "pk"),
    "updated": ("-updated_at", "-pk"),
    "campaign": ("campaign__name", "due_date", "pk"),
}


@dataclass(frozen=True)
class FollowUpFilters:
    assignee: str = "me"  # me, unassigned, all, or a user id
    status: str = "open"  # open, any, or a FollowUpStatus value
    campaign_id: int | None = None
    risk_level: str = ""
    due: str = ""  # overdue, today, week
    outcome: str = ""
    search: str = ""
    sort: str = "due"


def follow_up_list(*, actor: Actor, filters: FollowUpFilters, today: date | None = None) -> QuerySet[CampaignTarget]:
    """Treatment targets to follow up, filtered and sorted, with the customer's current risk."""
    today = today or timezone.localdate()
    qs = campaign_target_list(actor=actor).filter(group=TargetGroup.TREATMENT)
    if filters.assignee == "me":
        qs = qs.filter(assignee_id=actor.user_id)
    elif filters.assignee == "unassigned":
        qs = qs.filter(assignee__isnull=True)
    elif filters.assignee.isdigit():
        qs = qs.filter(assignee_id=int(filters.assignee))
    if filters.status == "open":
        qs = qs.filter(follow_up_status__in=OPEN_FOLLOW_UP_STATUSES, campaign__status=CampaignStatus.ACTIVE)
    elif filters.status in FollowUpStatus.values:
        qs = qs.filter(follow_up_status=filters.status)
    if filters.campaign_id is not None:
        qs = qs.filter(campaign_id=filters.campaign_id)
    if filters.risk_level in RiskLevel.values:
        qs = qs.filter(qualifying_risk_level=filters.risk_level)
    elif filters.risk_level == HIGH_OR_CRITICAL:
        qs = qs.filter(qualifying_risk_level__in=HIGH_RISK_LEVELS)
    if filters.due == "overdue":
        qs = qs.filter(due_date__lt=today)
    elif filters.due == "today":
        qs = qs.filter(due_date__lte=today)
    elif filters.due == "week":
        qs = qs.filter(due_date__lte=today + timedelta(days=7))
    if filters.outcome in TargetOutcome.values:
        qs = qs.filter(outcome=filters.outcome)
    if filters.search:
        qs = qs.filter(customer__customer_id__istartswith=filters.search.strip())
    return with_current_risk(qs).order_by(*FOLLOW_UP_SORTS.get(filters.sort, FOLLOW_UP_SORTS["due"]))


def saved_views(*, user: Any) -> list[tuple[str, str, str, int | None]]:
    """The built-in views, then the user's own: (slug, name, query string, saved view id or None)."""
    own = [(f"view-{v.pk}", v.name, v.query, v.pk) for v in SavedView.objects.filter(user=user).order_by("name", "pk")]
    return [(slug, name, query, None) for slug, name, query in BUILT_IN_VIEWS] + own
