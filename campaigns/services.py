"""Writes for campaigns: create, enrol, close, follow-up updates, assignment and outcomes.

Every state change locks what it changes, changes it and writes its audit entries in one
transaction. Services raise CampaignError with per-field messages for anything a caller can fix;
the API turns it into a 400, the staff pages into form errors.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from accounts.models import AuditLogEntry, Department
from accounts.services import SYSTEM, Actor, audit_record
from campaigns.models import (
    CampaignAction,
    CampaignSelection,
    CampaignStatus,
    CampaignTarget,
    FollowUpStatus,
    OutcomeSource,
    RetentionCampaign,
    SavedView,
    TargetGroup,
    TargetNote,
    TargetOutcome,
)
from campaigns.selectors import assignable_users, campaign_audience, campaign_candidates, projection_as_dict
from churn_ml.schema import ENUM_FIELDS
from customers.models import Customer, Outcome
from predictions.models import RiskLevel
from predictions.services import TierAction, tier_actions

logger = logging.getLogger(__name__)

# Rows per INSERT when enrolling: 10,000 targets go in ten statements, each well under a second.
ENROL_BATCH_SIZE = 1000
NOTE_MAX_LENGTH = 5000
# Customer ids per settling task message, and targets per locked batch when settling: keeps each row lock set small.
OUTCOME_BATCH_SIZE = 5000


class CampaignError(Exception):
    """A request a caller can correct: ``errors`` maps field names to messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


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


# --- the campaign itself ------------------------------------------------------------------------

FILTER_LIST_FIELDS = ("contract_type", "internet_service", "payment_method")
FILTER_NUMBER_FIELDS = ("min_tenure_months", "max_tenure_months", "min_monthly_charges", "max_monthly_charges")


def clean_target_filters(value: Any) -> dict[str, Any]:
    """Validate the optional customer filters of a target rule; enumerations in canonical spelling."""
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise CampaignError({"target_filters": ["Expected an object of filters."]})
    errors: list[str] = []
    out: dict[str, Any] = {}
    for name, raw in value.items():
        if name in FILTER_LIST_FIELDS:
            items = raw if isinstance(raw, list) else [raw]
            canonical = {v.lower(): v for v in ENUM_FIELDS[name]}
            picked = []
            for item in items:
                match = canonical.get(str(item).strip().lower())
                if match is None:
                    errors.append(f"{name}: {item!r} is not one of {', '.join(ENUM_FIELDS[name])}.")
                elif match not in picked:
                    picked.append(match)
            if picked:
                out[name] = picked
        elif name in FILTER_NUMBER_FIELDS:
            if raw is None:
                continue
            if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0:
                errors.append(f"{name}: expected a number of at least 0.")
            else:
                out[name] = raw
        elif name in ("senior_citizen", "risk_increased"):
            if raw is None or (name == "risk_increased" and raw is False):
                continue
            if not isinstance(raw, bool):
                errors.append(f"{name}: expected true or false.")
            else:
                out[name] = raw
        else:
            errors.append(f"{name}: unknown filter.")
    for low, high in (("min_tenure_months", "max_tenure_months"), ("min_monthly_charges", "max_monthly_charges")):
        if low in out and high in out and out[low] > out[high]:
            errors.append(f"{low} is above {high}.")
    if errors:
        raise CampaignError({"target_filters": errors})
    return out


@dataclass
class CampaignSpec:
    """What a caller may set on a new campaign; defaults are the model's."""

    name: str
    action: str
    goal: str = ""
    owner_id: int | None = None
    target_risk_levels: list[str] | None = None
    target_min_probability: float | None = None
    target_filters: dict[str, Any] | None = None
    discount_percent: Decimal | float | str | None = None
    action_details: str = ""
    control_share: float = 0.10
    start_date: date | None = None
    end_date: date | None = None
    horizon_months: int = 12
    offer_months: int | None = None
    follow_up_days: int = 7
    selection: str = CampaignSelection.THRESHOLD
    save_rate_prior: float | None = None
    budget_offers: int | None = None
    budget_money: Decimal | float | str | None = None
    playbook: list[dict[str, Any]] | None = None


PLAYBOOK_MAX_STEPS = 10


def clean_playbook(value: Any) -> list[dict[str, Any]]:
    """A checklist of {"day", "step"} in day order: days 0..365, a short text each, at most 10 steps."""
    if value in (None, ""):
        return []
    if not isinstance(value, list):
        raise CampaignError({"playbook": ['Expected a list such as [{"day": 0, "step": "Call"}].']})
    if len(value) > PLAYBOOK_MAX_STEPS:
        raise CampaignError({"playbook": [f"At most {PLAYBOOK_MAX_STEPS} steps."]})
    steps = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or set(item) - {"day", "step"}:
            raise CampaignError({"playbook": [f'Step {i + 1}: expected {{"day": n, "step": "text"}}.']})
        day, text = item.get("day"), str(item.get("step") or "").strip()
        if not isinstance(day, int) or isinstance(day, bool) or not 0 <= day <= 365:
            raise CampaignError({"playbook": [f"Step {i + 1}: day must be a whole number from 0 to 365."]})
        if not text or len(text) > 120:
            raise CampaignError({"playbook": [f"Step {i + 1}: the step needs a text of at most 120 characters."]})
        steps.append({"day": day, "step": text})
    return sorted(steps, key=lambda s: s["day"])


def _clean_selection(spec: CampaignSpec, errors: dict[str, list[str]]) -> dict[str, Any]:
    """Value selection's settings: a known mode, a save rate in 0..1, non-negative budgets."""
    if spec.selection not in CampaignSelection.values:
        errors["selection"] = [f"Must be one of {', '.join(CampaignSelection.values)}."]
    if spec.save_rate_prior is not None and not 0 <= spec.save_rate_prior <= 1:
        errors["save_rate_prior"] = ["Must be between 0 and 1 (0.15: a contact keeps 15% of would-be churners)."]
    if spec.budget_offers is not None and spec.budget_offers < 1:
        errors["budget_offers"] = ["Must be at least 1 offer."]
    money = None
    if spec.budget_money not in (None, ""):
        try:
            money = Decimal(str(spec.budget_money)).quantize(Decimal("0.01"))
        except InvalidOperation:
            errors["budget_money"] = ["Must be an amount."]
        else:
            if money < 0:
                errors["budget_money"] = ["Cannot be negative."]
    if spec.selection == CampaignSelection.THRESHOLD and (spec.budget_offers is not None or money is not None):
        errors["selection"] = ["A budget needs selection by value."]
    return {
        "selection": spec.selection,
        "save_rate_prior": spec.save_rate_prior,
        "budget_offers": spec.budget_offers,
        "budget_money": money,
    }


DEFAULT_OFFER_MONTHS = 3


def tier_default_offer(levels: Sequence[str]) -> dict[str, Any] | None:
    """The offer of the riskiest targeted level that has one: a campaign for a tier offers what the tier does."""
    offers = tier_actions()
    for level in reversed(RiskLevel.values):
        if level in levels and (offer := offers.get(level, TierAction([], None)).offer) is not None:
            return offer
    return None


def _clean_spec(spec: CampaignSpec, *, department_id: int) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    name = (spec.name or "").strip()
    if not name:
        errors["name"] = ["A campaign needs a name."]
    elif len(name) > 200:
        errors["name"] = ["At most 200 characters."]
    levels = list(dict.fromkeys(spec.target_risk_levels or []))
    bad_levels = [lv for lv in levels if lv not in RiskLevel.values]
    if bad_levels:
        errors["target_risk_levels"] = [f"Unknown risk levels {bad_levels}; use {', '.join(RiskLevel.values)}."]
    minimum = spec.target_min_probability
    if minimum is not None and not 0 <= minimum <= 1:
        errors["target_min_probability"] = ["Must be between 0 and 1."]
    if not levels and minimum is None:
        errors["target_risk_levels"] = ["The target rule needs risk levels or a minimum probability."]
    try:
        filters = clean_target_filters(spec.target_filters)
    except CampaignError as exc:
        errors.update(exc.errors)
        filters = {}
    if spec.action not in CampaignAction.values:
        errors["action"] = [f"Must be one of {', '.join(CampaignAction.values)}."]
    discount = None
    tier_offer = tier_default_offer(levels) if spec.action == CampaignAction.DISCOUNT else None
    offer_months = spec.offer_months
    if offer_months is None:
        offer_months = tier_offer["months"] if tier_offer and tier_offer.get("months") else DEFAULT_OFFER_MONTHS
    if spec.discount_percent in (None, "") and tier_offer is not None:
        discount = Decimal(str(tier_offer["discount_percent"])).quantize(Decimal("0.01"))
    elif spec.discount_percent not in (None, ""):
        try:
            discount = Decimal(str(spec.discount_percent)).quantize(Decimal("0.01"))
        except InvalidOperation:
            errors["discount_percent"] = ["Must be a number."]
        else:
            if not Decimal(0) < discount <= Decimal(100):
                errors["discount_percent"] = ["Must be above 0 and at most 100."]
    if spec.action == CampaignAction.DISCOUNT and discount is None and "discount_percent" not in errors:
        errors["discount_percent"] = [
            "A discount campaign needs the discount percent. None of its target risk levels has an offer to default to."
        ]
    if spec.action != CampaignAction.DISCOUNT and discount is not None:
        errors["discount_percent"] = ["Only a discount campaign has a discount."]
    if spec.action == CampaignAction.CUSTOM and not spec.action_details.strip():
        errors["action_details"] = ["Describe the custom action."]
    if not 0 <= spec.control_share <= 0.9:
        errors["control_share"] = ["Must be between 0 and 0.9 (0.1 holds out 10%)."]
    start = spec.start_date or timezone.localdate()
    if spec.end_date is not None and spec.end_date < start:
        errors["end_date"] = ["Cannot be before the start date."]
    for name_, value, low, high in (
        ("horizon_months", spec.horizon_months, 1, 120),
        ("offer_months", offer_months, 0, 120),
        ("follow_up_days", spec.follow_up_days, 0, 365),
    ):
        if not low <= value <= high:
            errors[name_] = [f"Must be between {low} and {high}."]
    if (
        spec.owner_id is not None
        and not assignable_users(department_id=department_id).filter(pk=spec.owner_id).exists()
    ):
        errors["owner"] = ["The owner must be an active staff member of the campaign's department."]
    selection = _clean_selection(spec, errors)
    try:
        playbook = clean_playbook(spec.playbook)
    except CampaignError as exc:
        errors.update(exc.errors)
        playbook = []
    if errors:
        raise CampaignError(errors)
    return {
        "name": name,
        "goal": spec.goal.strip(),
        "owner_id": spec.owner_id,
        "target_risk_levels": levels,
        "target_min_probability": minimum,
        "target_filters": filters,
        "action": spec.action,
        "discount_percent": discount,
        "action_details": spec.action_details.strip(),
        "control_share": spec.control_share,
        "start_date": start,
        "end_date": spec.end_date,
        "horizon_months": spec.horizon_months,
        "offer_months": offer_months,
        "follow_up_days": spec.follow_up_days,
        "playbook": playbook,
        **selection,
    }


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


# --- follow-up work -----------------------------------------------------------------------------

UNSET: Any = object()


def _user_label(user: Any) -> str:
    return user.get_username() if user is not None else ""


@transaction.atomic
def campaign_target_update(
    *,
    target_id: int,
    actor: Actor,
    follow_up_status: str | None = None,
    assignee_id: int | None = UNSET,
    due_date: date | None = UNSET,
    outcome: str | None = None,
    note: str = "",
) -> tuple[CampaignTarget, dict[str, list[Any]]]:
    """Change a follow-up in one step (status, assignee, due date, outcome, a new note).

    Returns the target and the changes made ({field: [before, after]}), which go into one audit
    entry. Control-group customers are held out: they get no assignee and no contact, though
    their outcome can be recorded.
    """
    target = (
        CampaignTarget.objects.select_for_update(of=("self",))
        .select_related("campaign", "customer", "assignee")
        .filter(pk=target_id)
        .first()
    )
    if target is None:
        raise NotVisible(target_id)
    _require_visible(actor, target.campaign.department_id)
    errors: dict[str, list[str]] = {}
    changes: dict[str, list[Any]] = {}
    now = timezone.now()

    if follow_up_status is not None and follow_up_status != target.follow_up_status:
        if follow_up_status not in FollowUpStatus.values:
            errors["follow_up_status"] = [f"Must be one of {', '.join(FollowUpStatus.values)}."]
        elif target.is_control:
            errors["follow_up_status"] = ["Control-group customers are held out and are not contacted."]
        else:
            changes["follow_up_status"] = [target.follow_up_status, follow_up_status]
            target.follow_up_status = follow_up_status
            if follow_up_status != FollowUpStatus.TO_DO and target.contacted_at is None:
                target.contacted_at = now

    if assignee_id is not UNSET and assignee_id != target.assignee_id:
        if target.is_control and assignee_id is not None:
            errors["assignee"] = ["Control-group customers are held out and get no assignee."]
        elif assignee_id is not None:
            user = assignable_users(department_id=target.campaign.department_id).filter(pk=assignee_id).first()
            if user is None:
                errors["assignee"] = ["Must be an active staff member of the campaign's department."]
            else:
                changes["assignee"] = [_user_label(target.assignee), user.get_username()]
                target.assignee = user
        else:
            changes["assignee"] = [_user_label(target.assignee), ""]
            target.assignee = None

    if due_date is not UNSET and due_date != target.due_date:
        changes["due_date"] = [
            target.due_date.isoformat() if target.due_date else None,
            due_date.isoformat() if due_date else None,
        ]
        target.due_date = due_date

    if outcome is not None and outcome != target.outcome:
        if outcome not in TargetOutcome.values:
            errors["outcome"] = [f"Must be one of {', '.join(TargetOutcome.values)}."]
        else:
            changes["outcome"] = [target.outcome, outcome]
            target.outcome = outcome
            known = outcome != TargetOutcome.UNKNOWN
            target.outcome_source = OutcomeSource.STAFF if known else OutcomeSource.NONE
            target.outcome_at = now if known else None

    note = (note or "").strip()
    if len(note) > NOTE_MAX_LENGTH:
        errors["note"] = [f"At most {NOTE_MAX_LENGTH} characters."]
    if errors:
        raise CampaignError(errors)
    if not changes and not note:
        return target, {}
    if changes:
        target.save()
    if note:
        author = actor.user if actor.user is not None and actor.user.pk else None
        TargetNote.objects.create(target=target, author=author, author_label=actor.label[:200], text=note)
    audit_record(
        actor=actor,
        action="campaign_target.update" if changes else "campaign_target.note",
        obj=target,
        department_id=target.campaign.department_id,
        details={
            "campaign_id": target.campaign_id,
            "customer_id": target.customer.customer_id if target.customer else None,
            "changes": changes,
            "note": note[:500] if note else None,
        },
    )
    return target, changes


@transaction.atomic
def campaign_targets_assign(*, target_ids: Iterable[int], assignee_id: int | None, actor: Actor) -> int:
    """Give many treatment follow-ups to one staff member (or unassign them); returns how many changed.

    The assignee must be staff in each target's department; control targets are left alone.
    """
    # Locked in primary-key order so that two bulk assignments cannot deadlock each other.
    targets = list(
        CampaignTarget.objects.select_for_update(of=("self",))
        .select_related("campaign", "assignee")
        .filter(pk__in=list(target_ids), group=TargetGroup.TREATMENT)
        .order_by("pk")
    )
    for target in targets:
        _require_visible(actor, target.campaign.department_id)
    user = None
    if assignee_id is not None:
        user = get_user_model().objects.filter(pk=assignee_id).first()
        departments = {t.campaign.department_id for t in targets}
        for department_id in departments:
            if not assignable_users(department_id=department_id).filter(pk=assignee_id).exists():
                raise CampaignError(
                    {"assignee": ["Must be an active staff member of every selected target's department."]}
                )
    changed: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    ids = []
    for target in targets:
        if target.assignee_id == assignee_id:
            continue
        ids.append(target.pk)
        changed.setdefault(target.campaign.department_id, []).append(
            (
                target.pk,
                {
                    "campaign_id": target.campaign_id,
                    "changes": {"assignee": [_user_label(target.assignee), _user_label(user)]},
                },
            )
        )
    if ids:
        CampaignTarget.objects.filter(pk__in=ids).update(assignee_id=assignee_id, updated_at=timezone.now())
    for department_id, entries in changed.items():
        _audit_many(actor=actor, action="campaign_target.assign", department_id=department_id, entries=entries)
    return len(ids)


@transaction.atomic
def campaign_target_step_done(*, target_id: int, actor: Actor, step: int) -> CampaignTarget:
    """Tick off the follow-up's next playbook step (given by its number, so a double click ticks once).

    The first step done marks the customer contacted; the due date moves to the next step's day.
    """
    target = (
        CampaignTarget.objects.select_for_update(of=("self",)).select_related("campaign", "customer")
        .filter(pk=target_id).first()
    )  # fmt: skip
    if target is None:
        raise NotVisible(target_id)
    _require_visible(actor, target.campaign.department_id)
    if target.is_control:
        raise CampaignError({"step": ["Control-group customers are held out and are not contacted."]})
    steps = target.campaign.playbook_steps()
    if step != target.steps_done:
        return target  # already ticked (a repeated click) or out of order: nothing changes
    if step >= len(steps):
        raise CampaignError({"step": ["Every step of this playbook is done."]})
    now = timezone.now()
    before = target.follow_up_status
    target.steps_done = step + 1
    if target.follow_up_status == FollowUpStatus.TO_DO:
        target.follow_up_status = FollowUpStatus.CONTACTED
    if target.contacted_at is None:
        target.contacted_at = now
    if target.steps_done < len(steps):
        target.due_date = timezone.localdate(target.created_at) + timedelta(days=int(steps[target.steps_done]["day"]))
    target.save(update_fields=["steps_done", "follow_up_status", "contacted_at", "due_date", "updated_at"])
    audit_record(
        actor=actor,
        action="campaign_target.step_done",
        obj=target,
        department_id=target.campaign.department_id,
        details={
            "campaign_id": target.campaign_id,
            "customer_id": target.customer.customer_id if target.customer else None,
            "step": steps[step]["step"],
            "changes": {"follow_up_status": [before, target.follow_up_status]} if before != target.follow_up_status
            else {},
        },
    )
    return target


@dataclass(frozen=True)
class BulkChange:
    selected: int
    changed: int
    held_out: int  # control-group targets left alone (never assigned nor contacted)


@transaction.atomic
def campaign_targets_bulk_change(
    *,
    target_ids: Iterable[int],
    actor: Actor,
    assignee_id: int | None = UNSET,
    follow_up_status: str | None = None,
    due_date: date | None = UNSET,
) -> BulkChange:
    """Assign, set the status of, or reschedule many follow-ups at once, each change audited.

    The rules are the one-step form's: control-group targets are held out, the assignee must be
    staff of each target's department, a status other than "to do" marks the customer contacted.
    """
    ids = list(dict.fromkeys(target_ids))
    if follow_up_status is not None and follow_up_status not in FollowUpStatus.values:
        raise CampaignError({"follow_up_status": [f"Must be one of {', '.join(FollowUpStatus.values)}."]})
    if follow_up_status == FollowUpStatus.DO_NOT_CONTACT:
        raise CampaignError({"follow_up_status": ["Do not contact is for the control group only."]})
    if assignee_id is UNSET and follow_up_status is None and due_date is UNSET:
        raise CampaignError({"action": ["Choose what to change: assignee, status or due date."]})
    # Locked in primary-key order so that two bulk changes cannot deadlock each other.
    targets = list(
        CampaignTarget.objects.select_for_update(of=("self",))
        .select_related("campaign")
        .filter(pk__in=ids)
        .order_by("pk")
    )
    for target in targets:
        _require_visible(actor, target.campaign.department_id)
    treated = [t for t in targets if t.group == TargetGroup.TREATMENT]
    changed_ids: set[int] = set()
    if assignee_id is not UNSET:
        before = {t.pk: t.assignee_id for t in treated}
        campaign_targets_assign(target_ids=[t.pk for t in treated], assignee_id=assignee_id, actor=actor)
        changed_ids |= {pk for pk, old in before.items() if old != assignee_id}
    now = timezone.now()
    entries: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    dirty = []
    for target in treated:
        changes: dict[str, list[Any]] = {}
        if follow_up_status is not None and follow_up_status != target.follow_up_status:
            changes["follow_up_status"] = [target.follow_up_status, follow_up_status]
            target.follow_up_status = follow_up_status
            if follow_up_status != FollowUpStatus.TO_DO and target.contacted_at is None:
                target.contacted_at = now
        if due_date is not UNSET and due_date != target.due_date:
            changes["due_date"] = [
                target.due_date.isoformat() if target.due_date else None,
                due_date.isoformat() if due_date else None,
            ]
            target.due_date = due_date
        if changes:
            target.updated_at = now
            dirty.append(target)
            changed_ids.add(target.pk)
            entries.setdefault(target.campaign.department_id, []).append(
                (target.pk, {"campaign_id": target.campaign_id, "changes": changes, "bulk": True})
            )
    if dirty:
        CampaignTarget.objects.bulk_update(
            dirty, ["follow_up_status", "contacted_at", "due_date", "updated_at"], batch_size=ENROL_BATCH_SIZE
        )
    for department_id, rows in entries.items():
        _audit_many(actor=actor, action="campaign_target.bulk_update", department_id=department_id, entries=rows)
    return BulkChange(selected=len(targets), changed=len(changed_ids), held_out=len(targets) - len(treated))


@transaction.atomic
def saved_view_save(*, user: Any, name: str, query: str, actor: Actor) -> SavedView:
    """Keep (or replace) a named filter and sort of the follow-up list for this user."""
    name = (name or "").strip()
    if not name:
        raise CampaignError({"name": ["A view needs a name."]})
    if len(name) > 80:
        raise CampaignError({"name": ["At most 80 characters."]})
    if len(query) > 500:
        raise CampaignError({"query": ["Too many filters to keep (500 characters at most)."]})
    view, _ = SavedView.objects.update_or_create(user=user, name=name, defaults={"query": query})
    audit_record(actor=actor, action="saved_view.save", obj=view, details={"name": name, "query": query})
    return view


@transaction.atomic
def saved_view_delete(*, user: Any, view_id: int, actor: Actor) -> bool:
    view = SavedView.objects.filter(user=user, pk=view_id).first()
    if view is None:
        return False
    audit_record(actor=actor, action="saved_view.delete", obj=view, details={"name": view.name})
    view.delete()
    return True


# --- outcomes -------------------------------------------------------------------------------------


@transaction.atomic
def campaign_targets_apply_outcomes(*, customer_ids: Sequence[str], actor: Actor = SYSTEM) -> int:
    """Fill targets' outcomes from the customers' recorded outcomes; returns how many changed.

    The latest outcome observed at or after a customer's enrolment decides: churned or retained.
    An outcome observed before the enrolment says nothing about the campaign and is ignored.
    Run by the apply_recorded_outcomes task that the outcomes_recorded event queues
    (campaigns.receivers); applying it twice changes nothing. Customers who are nobody's target
    (most of a file import's) cost one indexed lookup and nothing more.
    """
    pks = _target_pks(list(dict.fromkeys(customer_ids)))
    return sum(
        _targets_apply_outcomes(pks[i : i + OUTCOME_BATCH_SIZE], actor=actor)
        for i in range(0, len(pks), OUTCOME_BATCH_SIZE)
    )


# The targets of some customers, named by customer id. One array rather than an IN list: Django
# compiling a 5,000-id IN list costs more than the query (~150 ms against a few ms). The ids travel
# as one string split in the database (a stored customer id holds no comma: the contract's pattern).
_TARGETS_OF_CUSTOMERS = (
    f"SELECT t.id FROM {CampaignTarget._meta.db_table} t JOIN {Customer._meta.db_table} c ON c.id = t.customer_id"  # noqa: S608
    " WHERE c.customer_id = ANY(string_to_array(%s, ',')) ORDER BY t.id"
)


def _target_pks(ids: list[str]) -> list[int]:
    if not ids:
        return []
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_TARGETS_OF_CUSTOMERS, [",".join(i for i in ids if "," not in i)])
            return [pk for (pk,) in cursor.fetchall()]
    return sorted(
        pk
        for start in range(0, len(ids), OUTCOME_BATCH_SIZE)  # SQLite's parameter limit
        for pk in CampaignTarget.objects.filter(customer__customer_id__in=ids[start : start + OUTCOME_BATCH_SIZE])
        .values_list("pk", flat=True)
    )


def _targets_apply_outcomes(pks: list[int], *, actor: Actor) -> int:
    targets = list(
        CampaignTarget.objects.select_for_update(of=("self",))
        .filter(pk__in=pks)
        .select_related("campaign")
        .order_by("pk")
    )
    if not targets:
        return 0
    outcomes: dict[int, list[tuple[datetime, bool]]] = {}
    for customer_pk, observed_at, churned in (
        Outcome.objects.filter(customer_id__in={t.customer_id for t in targets})
        .order_by("customer_id", "-observed_at", "-pk")
        .values_list("customer_id", "observed_at", "churned")
    ):
        outcomes.setdefault(customer_pk, []).append((observed_at, churned))
    entries: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    changed = []
    now = timezone.now()
    for target in targets:
        latest = next((o for o in outcomes.get(target.customer_id, []) if o[0] >= target.created_at), None)
        if latest is None:
            continue
        observed_at, churned = latest
        value = TargetOutcome.CHURNED if churned else TargetOutcome.RETAINED
        if (
            target.outcome == value
            and target.outcome_source == OutcomeSource.RECORDED
            and target.outcome_at == observed_at
        ):
            continue
        entries.setdefault(target.campaign.department_id, []).append(
            (
                target.pk,
                {
                    "campaign_id": target.campaign_id,
                    "observed_at": observed_at.isoformat(),
                    "changes": {"outcome": [target.outcome, value]},
                    "source": OutcomeSource.RECORDED,
                },
            )
        )
        target.outcome, target.outcome_source, target.outcome_at = value, OutcomeSource.RECORDED, observed_at
        target.updated_at = now  # bulk_update leaves auto_now fields alone
        changed.append(target)
    if changed:
        CampaignTarget.objects.bulk_update(
            changed, ["outcome", "outcome_source", "outcome_at", "updated_at"], batch_size=ENROL_BATCH_SIZE
        )
    for department_id, items in entries.items():
        _audit_many(actor=actor, action="campaign_target.outcome", department_id=department_id, entries=items)
    return len(changed)
