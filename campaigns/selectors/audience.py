"""Whom an enrolment would take, the save rate it assumes and what it projects to save and cost."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from campaigns import stats
from campaigns.models import (
    CampaignSelection,
    CampaignTarget,
    RetentionCampaign,
)
from campaigns.selectors.effectiveness import (
    Effectiveness,
    _offer_cost_per_charge,
    campaign_effectiveness,
)
from campaigns.selectors.matching import Candidate, campaign_candidates


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
