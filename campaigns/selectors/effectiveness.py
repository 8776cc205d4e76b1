"""A campaign's effectiveness: treatment against control, per assignee, and the recent campaigns' results."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db.models import Count, Sum

from accounts.services import Actor
from campaigns import stats
from campaigns.models import (
    CampaignStatus,
    CampaignTarget,
    FollowUpStatus,
    RetentionCampaign,
    TargetGroup,
    TargetOutcome,
)
from campaigns.selectors.access import (
    campaign_list,
)
from churn_infra import metrics


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
