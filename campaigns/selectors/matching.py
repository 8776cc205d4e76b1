"""Matching customers: the candidates of a campaign's target rule (by Prediction.objects.latest_per_customer())."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Q

from campaigns.models import (
    RetentionCampaign,
)
from customers.models import Customer
from predictions.models import Prediction


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
