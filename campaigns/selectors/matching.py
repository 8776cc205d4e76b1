"""Matching customers: the candidates of a campaign's target rule (by Prediction.objects.latest_per_customer())."""

from __future__ import annotations

from dataclasses import dataclass

from campaigns.models import (
    RetentionCampaign,
)
from customers.filters import customer_filter_q
from customers.models import Customer
from predictions.models import Prediction


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
    predictions = Prediction.objects.latest_per_customer()
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
    customers = Customer.objects.filter(customer_filter_q(campaign.target_filters)).filter(
        customer_id__in=predictions.values("customer_id")
    )
    out = [
        Candidate(pk, cid, matched[cid][0], matched[cid][1], matched[cid][2], charges)
        for pk, cid, charges in customers.values_list("pk", "customer_id", "monthly_charges")
        if cid in matched
    ]
    out.sort(key=lambda c: (-c.probability, c.customer_id))
    return out
