"""Reads for campaigns: matching customers, follow-up work lists, effectiveness and dashboard figures.

Every list a page shows is built from a fixed number of queries whatever the number of rows
(aggregates grouped in the database, related rows joined or prefetched), so the staff pages stay
within their time budget with 100,000 customers and 10,000 targets.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, F, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from accounts.models import AuditLogEntry
from accounts.services import STAFF_GROUP, Actor
from campaigns import stats
from campaigns.models import (
    OPEN_FOLLOW_UP_STATUSES,
    CampaignSelection,
    CampaignStatus,
    CampaignTarget,
    FollowUpStatus,
    RetentionCampaign,
    SavedView,
    TargetGroup,
    TargetNote,
    TargetOutcome,
)
from churn_platform import metrics
from customers.models import Customer, CustomerEvent, EventStatus, EventType, Outcome
from predictions.models import Prediction, RiskLevel, RiskTierAction

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


# --- who may do what --------------------------------------------------------------------------


def user_is_staff_member(user: Any) -> bool:
    """Staff pages are for active users who are Django staff or in the "staff" group."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.is_staff or user.is_superuser:
        return True
    return user.groups.filter(name=STAFF_GROUP).exists()


def assignable_users(*, department_id: int) -> QuerySet[Any]:
    """Staff members of a department: the people a follow-up can be given to."""
    return (
        get_user_model()
        .objects.filter(is_active=True, membership__department_id=department_id)
        .filter(Q(is_staff=True) | Q(is_superuser=True) | Q(groups__name=STAFF_GROUP))
        .distinct()
        .order_by("username")
    )


def staff_user_ids() -> QuerySet[Any]:
    return (
        get_user_model()
        .objects.filter(Q(is_staff=True) | Q(is_superuser=True) | Q(groups__name=STAFF_GROUP))
        .values("pk")
    )


def staff_by_department(department_ids: set[int]) -> dict[int, list[tuple[int, str]]]:
    """Assignable staff (id, username) per department, in one query."""
    rows = (
        get_user_model()
        .objects.filter(is_active=True, membership__department_id__in=department_ids, pk__in=staff_user_ids())
        .values_list("membership__department_id", "pk", "username")
        .order_by("username")
    )
    out: dict[int, list[tuple[int, str]]] = {pk: [] for pk in department_ids}
    for department_id, pk, username in rows:
        out[department_id].append((pk, username))
    return out


# --- campaigns --------------------------------------------------------------------------------


def campaign_list(*, actor: Actor) -> QuerySet[RetentionCampaign]:
    return RetentionCampaign.objects.visible_to(
        department_id=actor.department_id, is_superuser=actor.is_superuser
    ).select_related("department", "owner")


def campaign_list_with_counts(*, actor: Actor) -> QuerySet[RetentionCampaign]:
    # Explicit order: Meta.ordering does not apply to a grouped (annotated) query.
    return (
        campaign_list(actor=actor)
        .annotate(
            target_count=Count("targets"),
            treatment_count=Count("targets", filter=Q(targets__group=TargetGroup.TREATMENT)),
            control_count=Count("targets", filter=Q(targets__group=TargetGroup.CONTROL)),
        )
        .order_by("-created_at", "-pk")
    )


def campaign_get(*, actor: Actor, campaign_id: int) -> RetentionCampaign | None:
    return campaign_list(actor=actor).filter(pk=campaign_id).first()


def campaign_target_list(*, actor: Actor) -> QuerySet[CampaignTarget]:
    qs = CampaignTarget.objects.select_related("campaign", "customer", "assignee")
    return qs if actor.is_superuser else qs.filter(campaign__department_id=actor.department_id)


def campaign_target_get(*, actor: Actor, target_id: int) -> CampaignTarget | None:
    return campaign_target_list(actor=actor).filter(pk=target_id).first()


# --- matching customers -------------------------------------------------------------------------


def latest_predictions() -> QuerySet[Prediction]:
    """Each customer's most recent prediction (ties broken by the later row)."""
    if connection.vendor == "postgresql":
        # DISTINCT ON walks the (customer_id, created_at) index: 3x faster than the window below.
        latest = Prediction.objects.order_by("customer_id", "-created_at", "-pk").distinct("customer_id").values("pk")
        return Prediction.objects.filter(pk__in=latest)
    ranked = (
        Prediction.objects.annotate(
            rank=Window(RowNumber(), partition_by=[F("customer_id")], order_by=[F("created_at").desc(), F("pk").desc()])
        )
        .filter(rank=1)
        .values("pk")
    )
    return Prediction.objects.filter(pk__in=ranked)


def _customer_filter(filters: dict[str, Any]) -> Q:
    q = Q()
    for name in ("contract_type", "internet_service", "payment_method"):
        if filters.get(name):
            q &= Q(**{f"{name}__in": filters[name]})
    if filters.get("senior_citizen") is not None:
        q &= Q(senior_citizen=filters["senior_citizen"])
    bounds = {
        "min_tenure_months": "tenure_months__gte",
        "max_tenure_months": "tenure_months__lte",
        "min_monthly_charges": "monthly_charges__gte",
        "max_monthly_charges": "monthly_charges__lte",
    }
    for name, lookup in bounds.items():
        if filters.get(name) is not None:
            q &= Q(**{lookup: filters[name]})
    return q


@dataclass(frozen=True)
class Candidate:
    customer_pk: int
    customer_id: str
    prediction_pk: int
    probability: float
    risk_level: str
    monthly_charges: float


def campaign_candidates(*, campaign: RetentionCampaign) -> list[Candidate]:
    """Customers whose latest prediction and record match the campaign's rule, riskiest first."""
    predictions = latest_predictions()
    if campaign.target_risk_levels:
        predictions = predictions.filter(risk_level__in=campaign.target_risk_levels)
    if campaign.target_min_probability is not None:
        predictions = predictions.filter(churn_probability__gte=campaign.target_min_probability)
    if campaign.target_filters.get("risk_increased"):
        # Set by batch scoring when a customer's level rose since their previous prediction.
        predictions = predictions.filter(risk_increased=True)
    matched = {
        cid: (pk, p, level)
        for pk, cid, p, level in predictions.values_list("pk", "customer_id", "churn_probability", "risk_level")
    }
    if not matched:
        return []
    customers = Customer.objects.filter(_customer_filter(campaign.target_filters)).filter(
        customer_id__in=predictions.values("customer_id")
    )
    out = [
        Candidate(pk, cid, matched[cid][0], matched[cid][1], matched[cid][2], charges)
        for pk, cid, charges in customers.values_list("pk", "customer_id", "monthly_charges")
        if cid in matched
    ]
    out.sort(key=lambda c: (-c.probability, c.customer_id))
    return out


# --- effectiveness ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AssigneeEffect:
    assignee_id: int | None
    assignee: str
    counts: stats.GroupCounts
    effect: stats.Effect
    progress: dict[str, int]

    @property
    def followed_up(self) -> int:
        return sum(n for status, n in self.progress.items() if status != FollowUpStatus.TO_DO)


@dataclass(frozen=True)
class Effectiveness:
    """What a campaign achieved, overall and per assignee, against its control group."""

    campaign_id: int
    horizon_months: int
    treatment: stats.GroupCounts
    control: stats.GroupCounts
    effect: stats.Effect
    progress: dict[str, int]
    per_assignee: list[AssigneeEffect] = field(default_factory=list)
    interval_method: str = "newcombe_hybrid_score"
    confidence_level: float = 0.95

    @property
    def targets(self) -> int:
        return self.treatment.targets + self.control.targets

    @property
    def outcomes_known(self) -> int:
        return self.treatment.known + self.control.known

    @property
    def followed_up(self) -> int:
        return sum(n for status, n in self.progress.items() if status != FollowUpStatus.TO_DO)

    @property
    def followed_up_share(self) -> float | None:
        return self.followed_up / self.treatment.targets if self.treatment.targets else None


class _Tally:
    def __init__(self) -> None:
        self.targets = 0
        self.known = 0
        self.retained = 0
        self.charges = 0.0
        self.offer_cost = 0.0
        self.progress: dict[str, int] = {s.value: 0 for s in FollowUpStatus}

    def add(self, *, n: int, outcome: str, status: str, charges: float, offer_cost: float) -> None:
        self.targets += n
        self.charges += charges
        self.offer_cost += offer_cost
        self.progress[status] = self.progress.get(status, 0) + n
        if outcome != TargetOutcome.UNKNOWN:
            self.known += n
            if outcome == TargetOutcome.RETAINED:
                self.retained += n

    def counts(self) -> stats.GroupCounts:
        return stats.GroupCounts(self.targets, self.known, self.retained, self.charges, self.offer_cost)


def _offer_cost_per_charge(campaign: RetentionCampaign) -> float:
    """Cost of an accepted offer per unit of monthly charge: percent x months."""
    if campaign.discount_percent is None:
        return 0.0
    return float(campaign.discount_percent / Decimal(100)) * campaign.offer_months


def campaign_effectiveness(*, campaign: RetentionCampaign) -> Effectiveness:
    """Retention per group, uplift with its 95% interval, customers saved, revenue kept and offer cost.

    One grouped query over the campaign's targets; per assignee, the assignee's treated
    customers are compared with the whole control group (control customers have no assignee).
    """
    rows = (
        CampaignTarget.objects.filter(campaign=campaign)
        .values("group", "assignee_id", "outcome", "follow_up_status")
        .annotate(n=Count("pk"), charges=Sum("monthly_charges"))
        .order_by()
    )
    cost_rate = _offer_cost_per_charge(campaign)
    treatment, control = _Tally(), _Tally()
    by_assignee: dict[int | None, _Tally] = defaultdict(_Tally)
    for row in rows:
        charges = float(row["charges"] or 0.0)
        is_accepted = row["follow_up_status"] == FollowUpStatus.OFFER_ACCEPTED
        cost = charges * cost_rate if is_accepted and row["group"] == TargetGroup.TREATMENT else 0.0
        args = {
            "n": row["n"],
            "outcome": row["outcome"],
            "status": row["follow_up_status"],
            "charges": charges,
            "offer_cost": cost,
        }
        if row["group"] == TargetGroup.CONTROL:
            control.add(**args)
        else:
            treatment.add(**args)
            by_assignee[row["assignee_id"]].add(**args)
    control_counts = control.counts()
    names = dict(
        get_user_model()
        .objects.filter(pk__in=[pk for pk in by_assignee if pk is not None])
        .values_list("pk", "username")
    )
    per_assignee = [
        AssigneeEffect(
            assignee_id=pk,
            assignee=names.get(pk, "unassigned") if pk is not None else "unassigned",
            counts=tally.counts(),
            effect=stats.effect(tally.counts(), control_counts, horizon_months=campaign.horizon_months),
            progress=tally.progress,
        )
        for pk, tally in by_assignee.items()
    ]
    per_assignee.sort(key=lambda a: (a.assignee_id is None, a.assignee))
    result = Effectiveness(
        campaign_id=campaign.pk,
        horizon_months=campaign.horizon_months,
        treatment=treatment.counts(),
        control=control_counts,
        effect=stats.effect(treatment.counts(), control_counts, horizon_months=campaign.horizon_months),
        progress=treatment.progress,
        per_assignee=per_assignee,
    )
    if result.effect.uplift is not None:
        metrics.CAMPAIGN_UPLIFT.labels(campaign=str(campaign.pk)).set(result.effect.uplift)
    return result


# --- audience: whom an enrolment would take ------------------------------------------------------


@dataclass(frozen=True)
class SaveRate:
    """The save rate a projection assumes, and where it comes from."""

    value: float
    source: str  # "measured uplift", "campaign prior" or "default prior"
    low: float | None = None
    high: float | None = None
    small_sample: bool = False


@dataclass(frozen=True)
class Audience:
    """The customers an enrolment would take now, and what contacting them is expected to achieve."""

    matched: int
    already_enrolled: int
    in_other_campaign: int
    chosen: list[tuple[Candidate, bool]]  # (candidate, in control), in enrolment order
    over_limit: int
    projection: stats.Projection
    save_rate: SaveRate


def campaign_save_rate(*, campaign: RetentionCampaign, effectiveness: Effectiveness | None = None) -> SaveRate:
    """The campaign's measured uplift once both groups have outcomes, else the operator's prior."""
    effect = (effectiveness or campaign_effectiveness(campaign=campaign)).effect
    if effect.uplift is not None:
        return SaveRate(effect.uplift, "measured uplift", effect.uplift_low, effect.uplift_high, effect.small_sample)
    if campaign.save_rate_prior is not None:
        return SaveRate(campaign.save_rate_prior, "campaign prior")
    return SaveRate(settings.CAMPAIGN_SAVE_RATE_PRIOR, "default prior")


def campaign_audience(*, campaign: RetentionCampaign, limit: int | None = None) -> Audience:
    """Matching customers not yet enrolled anywhere, selected by the campaign's rule or by expected value.

    The same function decides for the preview and for the enrolment, so the preview is what an
    enrolment done now would take. Control membership is the campaign's fixed hash, known in advance.
    """
    candidates = campaign_candidates(campaign=campaign)
    taken = set(
        CampaignTarget.objects.filter(
            customer_id__in=[c.customer_pk for c in candidates], in_active_campaign=True
        ).values_list("customer_id", flat=True)
    )
    own = set(CampaignTarget.objects.filter(campaign=campaign).values_list("customer_id", flat=True))
    fresh = [c for c in candidates if c.customer_pk not in own and c.customer_pk not in taken]
    already = sum(1 for c in candidates if c.customer_pk in own)
    elsewhere = sum(1 for c in candidates if c.customer_pk not in own and c.customer_pk in taken)
    rate = campaign_save_rate(campaign=campaign)
    cost_rate = _offer_cost_per_charge(campaign)
    by_key = {c.customer_id: c for c in fresh}
    picks = [
        stats.Pick(
            key=c.customer_id,
            probability=c.probability,
            monthly_charges=c.monthly_charges,
            offer_cost=c.monthly_charges * cost_rate,
            value=stats.contact_value(
                probability=c.probability,
                save_rate=rate.value,
                monthly_charges=c.monthly_charges,
                horizon_months=campaign.horizon_months,
                offer_cost=c.monthly_charges * cost_rate,
            ),
            control=stats.in_control(campaign.pk, c.customer_id, campaign.control_share),
        )
        for c in fresh
    ]
    if campaign.selection == CampaignSelection.VALUE:
        picks = stats.select_by_value(
            picks,
            max_offers=campaign.budget_offers,
            max_money=float(campaign.budget_money) if campaign.budget_money is not None else None,
        )
    over_limit = max(0, len(picks) - limit) if limit is not None else 0
    if limit is not None:
        picks = picks[:limit]
    interval = (rate.low, rate.high) if rate.low is not None and rate.high is not None else None
    projection = stats.project(
        picks, save_rate=rate.value, horizon_months=campaign.horizon_months, save_rate_interval=interval
    )
    return Audience(
        matched=len(candidates),
        already_enrolled=already,
        in_other_campaign=elsewhere,
        chosen=[(by_key[p.key], p.control) for p in picks],
        over_limit=over_limit,
        projection=projection,
        save_rate=rate,
    )


def projection_as_dict(audience: Audience) -> dict[str, Any]:
    """The preview's figures, as the API returns them and as an enrolment keeps them."""
    p = audience.projection
    saves, revenue = p.saves_interval, p.revenue_interval
    return {
        "matched": audience.matched,
        "selected": p.selected,
        "treatment": p.treatment,
        "control": p.control,
        "already_enrolled": audience.already_enrolled,
        "in_other_campaign": audience.in_other_campaign,
        "over_limit": audience.over_limit,
        "expected_saves": round(p.expected_saves, 4),
        "expected_revenue_kept": round(p.expected_revenue_kept, 2),
        "offer_cost": round(p.offer_cost, 2),
        "expected_net": round(p.expected_net, 2),
        "expected_saves_ci95": [round(v, 4) for v in saves] if saves else None,
        "expected_revenue_kept_ci95": [round(v, 2) for v in revenue] if revenue else None,
        "save_rate": round(p.save_rate, 6),
        "save_rate_source": audience.save_rate.source,
        "small_sample": audience.save_rate.small_sample,
    }


@dataclass(frozen=True)
class CampaignResult:
    campaign: RetentionCampaign
    treatment: stats.GroupCounts
    control: stats.GroupCounts
    effect: stats.Effect


def campaign_results(*, actor: Actor, limit: int = 6) -> list[CampaignResult]:
    """Retention in treatment and control for the most recent non-draft campaigns, in two queries."""
    campaigns = list(campaign_list(actor=actor).exclude(status=CampaignStatus.DRAFT)[:limit])
    if not campaigns:
        return []
    rows = (
        CampaignTarget.objects.filter(campaign__in=campaigns)
        .values("campaign_id", "group", "outcome")
        .annotate(n=Count("pk"), charges=Sum("monthly_charges"))
        .order_by()
    )
    tallies: dict[tuple[int, str], _Tally] = defaultdict(_Tally)
    for row in rows:
        tallies[(row["campaign_id"], row["group"])].add(
            n=row["n"],
            outcome=row["outcome"],
            status=FollowUpStatus.TO_DO,
            charges=float(row["charges"] or 0.0),
            offer_cost=0.0,
        )
    out = []
    for campaign in campaigns:
        treatment = tallies[(campaign.pk, TargetGroup.TREATMENT)].counts()
        control = tallies[(campaign.pk, TargetGroup.CONTROL)].counts()
        out.append(
            CampaignResult(
                campaign, treatment, control, stats.effect(treatment, control, horizon_months=campaign.horizon_months)
            )
        )
    return out


# --- follow-up work -----------------------------------------------------------------------------


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
    own = [
        (f"view-{v.pk}", v.name, v.query, v.pk) for v in SavedView.objects.filter(user=user).order_by("name", "pk")
    ]
    return [(slug, name, query, None) for slug, name, query in BUILT_IN_VIEWS] + own


# --- a customer ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerOverview:
    customer: Customer
    predictions: list[Prediction]
    latest: Prediction | None
    tier_action: RiskTierAction | None
    targets: list[CampaignTarget]
    notes: list[TargetNote]
    outcomes: list[Outcome]


def customer_overview(*, actor: Actor, customer_id: str, history: int = 20) -> CustomerOverview | None:
    customer = Customer.objects.filter(customer_id=customer_id).first()
    if customer is None:
        return None
    predictions = list(
        Prediction.objects.filter(customer_id=customer_id)
        .select_related("model_version")
        .order_by("-created_at", "-pk")[:history]
    )
    latest = predictions[0] if predictions else None
    tier_action = RiskTierAction.objects.filter(risk_level=latest.risk_level).first() if latest else None
    targets = list(
        campaign_target_list(actor=actor)
        .filter(customer=customer)
        .prefetch_related(Prefetch("notes", queryset=TargetNote.objects.order_by("-created_at", "-pk")))
        .order_by("-created_at", "-pk")
    )
    notes = sorted((n for t in targets for n in t.notes.all()), key=lambda n: (n.created_at, n.pk), reverse=True)
    outcomes = list(customer.outcomes.order_by("-observed_at", "-pk")[:10])
    return CustomerOverview(customer, predictions, latest, tier_action, targets, notes, outcomes)


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # prediction, event, outcome, campaign, note
    title: str
    detail: str = ""
    css: str = ""


TIMELINE_EVENTS = 50


def customer_timeline(*, actor: Actor, overview: CustomerOverview) -> list[TimelineEntry]:
    """Everything that happened to a customer, newest first: scores, stream events, outcomes, campaign steps, notes.

    Built from what the overview already loaded plus two queries (events, audited campaign steps), so
    the page stays at a fixed number of queries.
    """
    event_labels = dict(EventType.choices)
    events = CustomerEvent.objects.filter(customer=overview.customer, status=EventStatus.APPLIED).order_by(
        "-created_at", "-pk"
    )[:TIMELINE_EVENTS]
    targets = {t.pk: t for t in overview.targets}
    steps = AuditLogEntry.objects.filter(
        object_type="campaigns.campaigntarget",
        object_id__in=[str(pk) for pk in targets],
        action__in=("campaign_target.update", "campaign_target.bulk_update", "campaign_target.assign"),
    ).order_by("-created_at", "-pk")[:TIMELINE_EVENTS]
    entries = [
        *(
            TimelineEntry(p.created_at, "prediction", f"Scored {p.churn_probability:.0%} ({p.risk_level})",
                          f"model {p.model_version.version}", p.risk_level)
            for p in overview.predictions
        ),
        *(
            TimelineEntry(e.occurred_at or e.created_at, "event", event_labels.get(e.event_type, e.event_type),
                          _event_words(e.data))
            for e in events
        ),
        *(
            TimelineEntry(o.observed_at, "outcome", "Churned" if o.churned else "Stayed",
                          f"recorded from {o.source}" if o.source else "", "churned" if o.churned else "retained")
            for o in overview.outcomes
        ),
        *(
            TimelineEntry(t.created_at, "campaign", f"Enrolled in {t.campaign.name}",
                          "control group (held out)" if t.is_control else "treatment")
            for t in overview.targets
        ),
        *(
            TimelineEntry(t.outcome_at, "campaign", f"{t.campaign.name}: {t.get_outcome_display()}",
                          f"from {t.get_outcome_source_display()}")
            for t in overview.targets
            if t.outcome_at is not None and t.outcome != TargetOutcome.UNKNOWN
        ),
        *(entry for step in steps if (entry := _step_entry(step, targets)) is not None),
        *(TimelineEntry(n.created_at, "note", f"Note by {n.author_label}", n.text) for n in overview.notes),
    ]  # fmt: skip
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries


def _step_entry(step: AuditLogEntry, targets: dict[int, CampaignTarget]) -> TimelineEntry | None:
    changes = (step.details or {}).get("changes") or {}
    words = "; ".join(
        f"{name.replace('_', ' ')} {before or '—'} → {after or '—'}" for name, (before, after) in changes.items()
    )
    if not words:
        return None
    target = targets.get(int(step.object_id))
    campaign = target.campaign.name if target else "Campaign"
    detail = f"{words} (by {step.actor_label})"
    return TimelineEntry(step.created_at, "campaign", f"{campaign}: follow-up changed", detail)


def _event_words(data: dict[str, Any]) -> str:
    return ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in list((data or {}).items())[:6])


# --- dashboard ----------------------------------------------------------------------------------


_LATEST_LEVEL_SQL = {
    # DISTINCT ON walks the (customer_id, created_at) index; the window form is for SQLite (make run).
    "postgresql": "SELECT risk_level, COUNT(*) FROM (SELECT DISTINCT ON (customer_id) risk_level FROM {table} "
    "ORDER BY customer_id, created_at DESC, id DESC) latest GROUP BY risk_level",
    "default": "SELECT risk_level, COUNT(*) FROM (SELECT risk_level, ROW_NUMBER() OVER (PARTITION BY customer_id "
    "ORDER BY created_at DESC, id DESC) AS rn FROM {table}) ranked WHERE rn = 1 GROUP BY risk_level",
}

# Each customer's first prediction at a level, counted per day of that first prediction. Grouped
# in the database: bucketing tens of thousands of timestamps in Python cost ~200 ms.
_NEW_AT_LEVEL_SQL = (
    "SELECT risk_level, DATE(first_at), COUNT(*) FROM (SELECT customer_id, risk_level, MIN(created_at) AS first_at "
    "FROM {table} WHERE risk_level IN (%s, %s) GROUP BY customer_id, risk_level) firsts "
    "WHERE first_at >= %s GROUP BY risk_level, DATE(first_at)"
)


def _prediction_table() -> str:
    return connection.ops.quote_name(Prediction._meta.db_table)


def customers_by_risk_level() -> dict[str, int]:
    """How many customers each risk level holds by their latest prediction; 'unscored' for the rest."""
    counts = {level.value: 0 for level in RiskLevel}
    sql = _LATEST_LEVEL_SQL.get(connection.vendor, _LATEST_LEVEL_SQL["default"]).format(table=_prediction_table())
    with connection.cursor() as cursor:
        cursor.execute(sql)
        counts.update(dict(cursor.fetchall()))
    counts["unscored"] = max(0, Customer.objects.count() - sum(counts.values()))
    return counts


def new_high_risk_per_day(*, days: int = 30, now: datetime | None = None) -> list[tuple[date, int, int]]:
    """(day, new high, new critical) for the last ``days`` days (UTC days, as TIME_ZONE is UTC).

    A customer is new at a level on the day of their first prediction at that level.
    """
    now = now or timezone.now()
    first_day = timezone.localdate(now) - timedelta(days=days - 1)
    since = timezone.make_aware(datetime.combine(first_day, datetime.min.time()))
    per_day: dict[date, list[int]] = {first_day + timedelta(days=i): [0, 0] for i in range(days)}
    with connection.cursor() as cursor:
        cursor.execute(
            _NEW_AT_LEVEL_SQL.format(table=_prediction_table()), [RiskLevel.HIGH.value, RiskLevel.CRITICAL.value, since]
        )
        for level, day, n in cursor.fetchall():
            day = date.fromisoformat(day) if isinstance(day, str) else day  # SQLite returns text
            if day in per_day:
                per_day[day][0 if level == RiskLevel.HIGH else 1] += n
    return [(day, high, critical) for day, (high, critical) in sorted(per_day.items())]


# The population charts scan every prediction (~100 ms per 100,000 customers, growing with the
# history), too slow to compute on each page view. They are served from a snapshot in the shared
# cache that beat refreshes every few minutes (campaigns.tasks.refresh_population_stats); a stale
# snapshot is still served while one refresh is queued.
POPULATION_CACHE_KEY = "campaigns:population-stats:v1"
POPULATION_FRESH_SECONDS = 300
POPULATION_KEEP_SECONDS = 24 * 3600
_POPULATION_REFRESH_LOCK = "campaigns:population-stats:refreshing"


@dataclass(frozen=True)
class PopulationStats:
    risk: dict[str, int]
    new_high: list[tuple[date, int, int]]
    computed_at: datetime

    @property
    def total(self) -> int:
        return sum(self.risk.values())

    @property
    def new_high_total(self) -> int:
        return sum(high + critical for _, high, critical in self.new_high)


def population_stats_refresh(*, now: datetime | None = None) -> PopulationStats:
    """Compute the population figures and store them as the current snapshot."""
    now = now or timezone.now()
    stats_ = PopulationStats(customers_by_risk_level(), new_high_risk_per_day(days=30, now=now), now)
    cache.set(
        POPULATION_CACHE_KEY,
        {"risk": stats_.risk, "new_high": stats_.new_high, "computed_at": stats_.computed_at},
        POPULATION_KEEP_SECONDS,
    )
    return stats_


def population_stats(*, now: datetime | None = None) -> PopulationStats:
    """The latest snapshot; computed now when there is none, refreshed in the background when stale."""
    now = now or timezone.now()
    cached = cache.get(POPULATION_CACHE_KEY)
    if cached is None:
        return population_stats_refresh(now=now)
    snapshot = PopulationStats(cached["risk"], cached["new_high"], cached["computed_at"])
    if (now - snapshot.computed_at).total_seconds() > POPULATION_FRESH_SECONDS and cache.add(
        _POPULATION_REFRESH_LOCK, 1, 60
    ):
        from campaigns.tasks import refresh_population_stats

        refresh_population_stats.delay()
    return snapshot


@dataclass(frozen=True)
class OpenWork:
    open: int
    overdue: int
    mine: int
    mine_overdue: int
    unassigned: int
    by_status: dict[str, int]


def open_follow_ups(*, actor: Actor, today: date | None = None) -> OpenWork:
    today = today or timezone.localdate()
    qs = CampaignTarget.objects.filter(group=TargetGroup.TREATMENT, campaign__status=CampaignStatus.ACTIVE)
    if not actor.is_superuser:
        qs = qs.filter(campaign__department_id=actor.department_id)
    rows = (
        qs.values("follow_up_status")
        .annotate(
            n=Count("pk"),
            overdue=Count("pk", filter=Q(due_date__lt=today)),
            mine=Count("pk", filter=Q(assignee_id=actor.user_id)),
            mine_overdue=Count("pk", filter=Q(assignee_id=actor.user_id, due_date__lt=today)),
            unassigned=Count("pk", filter=Q(assignee__isnull=True)),
        )
        .order_by()
    )
    by_status = {s.value: 0 for s in FollowUpStatus}
    totals = dict.fromkeys(("open", "overdue", "mine", "mine_overdue", "unassigned"), 0)
    for row in rows:
        by_status[row["follow_up_status"]] = row["n"]
        if row["follow_up_status"] in OPEN_FOLLOW_UP_STATUSES:
            totals["open"] += row["n"]
            for name in ("overdue", "mine", "mine_overdue", "unassigned"):
                totals[name] += row[name]
    return OpenWork(by_status=by_status, **totals)
