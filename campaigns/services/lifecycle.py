"""A campaign's life: create a draft, enrol its targets (treatment and control), close it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from accounts.models import Department
from accounts.services import SYSTEM, Actor, audit_record
from campaigns.models import (
    CampaignStatus,
    CampaignTarget,
    FollowUpStatus,
    RetentionCampaign,
    TargetGroup,
)
from campaigns.selectors.access import assignable_users
from campaigns.selectors.audience import campaign_audience, projection_as_dict
from campaigns.selectors.matching import campaign_candidates
from campaigns.services.common import (
    ENROL_BATCH_SIZE,
    CampaignError,
    _lock_campaign,
)
from campaigns.services.spec import CampaignSpec, _clean_spec


@transaction.atomic
def campaign_create(*, actor: Actor, spec: CampaignSpec, department_id: int | None = None) -> RetentionCampaign:
    """A new draft campaign for the actor's department (superusers may name another)."""
    department_id = department_id if department_id is not None and actor.is_superuser else actor.department_id
    if department_id is None or not Department.objects.filter(pk=department_id).exists():
        raise CampaignError({"department": ["The caller belongs to no department; a campaign needs one."]})
    fields = _clean_spec(spec, department_id=department_id)
    campaign = RetentionCampaign.objects.create(
        department_id=department_id,
        created_by=actor.user if actor.user is not None and actor.user.pk else None,
        **fields,
    )
    audit_record(
        actor=actor,
        action="campaign.create",
        obj=campaign,
        department_id=department_id,
        details={
            "name": campaign.name,
            "action": campaign.action,
            "rule": campaign.rule_summary(),
            "control_share": campaign.control_share,
        },
    )
    return campaign


@dataclass(frozen=True)
class EnrolResult:
    matched: int
    enrolled: int
    treatment: int
    control: int
    already_enrolled: int
    in_other_campaign: int
    over_limit: int
    # Customers are a company-wide registry: a customer held by another active campaign is named
    # by that campaign's department, {department name: customers}, so a refusal explains itself.
    in_other_campaign_by_department: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _assignee_ids(campaign: RetentionCampaign, assignee_ids: Sequence[int] | None) -> list[int]:
    if not assignee_ids:
        return []
    wanted = list(dict.fromkeys(assignee_ids))
    allowed = set(
        assignable_users(department_id=campaign.department_id).filter(pk__in=wanted).values_list("pk", flat=True)
    )
    missing = [pk for pk in wanted if pk not in allowed]
    if missing:
        raise CampaignError({"assignees": [f"Not staff members of the campaign's department: {missing}."]})
    return wanted


_SUMMED = ("selected", "treatment", "control", "expected_saves", "expected_revenue_kept", "offer_cost", "expected_net")


def _accumulate_projection(before: dict[str, Any], now_: dict[str, Any], at: datetime) -> dict[str, Any]:
    """A campaign enrolled several times expects the sum of what each enrolment expected."""
    if not before or not now_["selected"]:
        merged = dict(now_) if not before else dict(before)
    else:
        merged = {**now_, **{k: round(before.get(k, 0) + now_[k], 4) for k in _SUMMED}}
        merged["expected_saves_ci95"] = merged["expected_revenue_kept_ci95"] = None  # no longer one interval
    merged["as_of"] = at.isoformat()
    merged["enrolments"] = int(before.get("enrolments", 0)) + (1 if now_["selected"] else 0)
    return merged


def _holding_departments(campaign: RetentionCampaign, customer_pks: list[int]) -> dict[str, int]:
    """{department name: customers} of the other active campaigns holding these customers."""
    if not customer_pks:
        return {}
    rows = (
        CampaignTarget.objects.filter(customer_id__in=customer_pks, in_active_campaign=True)
        .exclude(campaign=campaign)
        .values_list("campaign__department__name")
        .annotate(n=Count("pk"))
        .order_by("campaign__department__name")
    )
    return dict(rows)


@transaction.atomic
def campaign_enrol(
    *,
    campaign_id: int,
    actor: Actor,
    assignee_ids: Sequence[int] | None = None,
    limit: int | None = None,
    today: date | None = None,
) -> EnrolResult:
    """Enrol the customers matching the rule, riskiest first; a draft campaign becomes active.

    Customers already in this campaign or in another active one are skipped; each new target is
    put in treatment or control by stats.in_control (so enrolling again never moves anyone) and
    keeps the prediction that qualified it. Treatment targets are dealt round-robin to the given
    assignees; control targets are never contacted.
    """
    campaign = _lock_campaign(campaign_id, actor)
    if campaign.status == CampaignStatus.CLOSED:
        raise CampaignError({"status": ["This campaign is closed; it cannot enrol customers."]})
    if limit is not None and limit < 1:
        raise CampaignError({"limit": ["Must be at least 1."]})
    assignees = _assignee_ids(campaign, assignee_ids)
    today = today or timezone.localdate()
    audience = campaign_audience(campaign=campaign, limit=limit)
    already, elsewhere, over_limit = audience.already_enrolled, audience.in_other_campaign, audience.over_limit
    due = today + timedelta(days=campaign.follow_up_days)
    targets = []
    dealt = 0
    for c, control in audience.chosen:
        assignee = None
        if not control and assignees:
            assignee = assignees[dealt % len(assignees)]
            dealt += 1
        targets.append(
            CampaignTarget(
                campaign=campaign,
                customer_id=c.customer_pk,
                group=TargetGroup.CONTROL if control else TargetGroup.TREATMENT,
                in_active_campaign=True,
                assignee_id=assignee,
                follow_up_status=FollowUpStatus.DO_NOT_CONTACT if control else FollowUpStatus.TO_DO,
                due_date=None if control else due,
                prediction_id=c.prediction_pk,
                qualifying_probability=c.probability,
                qualifying_risk_level=c.risk_level,
                monthly_charges=c.monthly_charges,
            )
        )
    started = timezone.now()
    # A concurrent enrolment of another campaign may take some of these customers first: the
    # partial unique index refuses them and DO NOTHING skips them instead of failing the batch.
    CampaignTarget.objects.bulk_create(targets, batch_size=ENROL_BATCH_SIZE, ignore_conflicts=True)
    # This campaign is locked, so the rows created since `started` are exactly this call's.
    counts = dict(
        CampaignTarget.objects.filter(campaign=campaign, created_at__gte=started)
        .values_list("group")
        .annotate(n=Count("pk"))
        .order_by()
    )
    enrolled = sum(counts.values())
    elsewhere += len(targets) - enrolled
    held_by = (
        _holding_departments(campaign, [c.customer_pk for c in campaign_candidates(campaign=campaign)])
        if elsewhere
        else {}
    )
    now = timezone.now()
    changed = ["enrolled_at", "updated_at", "projection"]
    campaign.enrolled_at = now
    # Kept so that the campaign page can show, once outcomes arrive, what was expected next to what happened.
    campaign.projection = _accumulate_projection(campaign.projection, projection_as_dict(audience), now)
    if campaign.status == CampaignStatus.DRAFT:
        campaign.status = CampaignStatus.ACTIVE
        changed.append("status")
    campaign.save(update_fields=changed)
    result = EnrolResult(
        matched=audience.matched,
        enrolled=enrolled,
        treatment=counts.get(TargetGroup.TREATMENT, 0),
        control=counts.get(TargetGroup.CONTROL, 0),
        already_enrolled=already,
        in_other_campaign=elsewhere,
        over_limit=over_limit,
        in_other_campaign_by_department=held_by,
    )
    audit_record(
        actor=actor,
        action="campaign.enrol",
        obj=campaign,
        department_id=campaign.department_id,
        details={**result.as_dict(), "assignees": assignees, "limit": limit, "status": campaign.status},
    )
    return result


@transaction.atomic
def campaign_close(*, campaign_id: int, actor: Actor) -> RetentionCampaign:
    """Close a campaign: no more enrolment, and its customers may join another campaign.

    Follow-ups and outcomes can still be recorded afterwards: outcomes arrive after the end.
    """
    campaign = _lock_campaign(campaign_id, actor)
    if campaign.status == CampaignStatus.CLOSED:
        return campaign
    previous = campaign.status
    campaign.status = CampaignStatus.CLOSED
    campaign.closed_at = timezone.now()
    campaign.save(update_fields=["status", "closed_at", "updated_at"])
    released = CampaignTarget.objects.filter(campaign=campaign, in_active_campaign=True).update(
        in_active_campaign=False, updated_at=timezone.now()
    )
    audit_record(
        actor=actor,
        action="campaign.close",
        obj=campaign,
        department_id=campaign.department_id,
        details={"previous_status": previous, "targets_released": released},
    )
    return campaign


def campaigns_close_ended(*, today: date | None = None, actor: Actor = SYSTEM) -> list[int]:
    """Close every active or draft campaign whose end date has passed; returns their ids."""
    today = today or timezone.localdate()
    ids = list(
        RetentionCampaign.objects.filter(end_date__lt=today)
        .exclude(status=CampaignStatus.CLOSED)
        .values_list("pk", flat=True)
    )
    for pk in ids:
        campaign_close(campaign_id=pk, actor=actor)
    return ids
