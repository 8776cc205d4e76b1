from __future__ import annotations

from datetime import timedelta

import factory
from django.utils import timezone

from campaigns.models import CampaignAction, CampaignTarget, FollowUpStatus, RetentionCampaign, TargetGroup
from modelregistry.models import ModelStatus, ModelVersion
from predictions.models import Prediction
from tests.factories import CustomerFactory, DepartmentFactory


def level_for(p: float) -> str:
    """The contract's risk level for a probability."""
    if p >= 0.8:
        return "critical"
    if p >= 0.6:
        return "high"
    if p >= 0.3:
        return "medium"
    return "low"


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion
        django_get_or_create = ("version",)

    version = "test-model-1"
    algorithm = "logistic_regression"
    feature_spec_version = "1"
    schema_version = "1"
    status = ModelStatus.ACTIVE


class PredictionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prediction

    customer_id = factory.Sequence(lambda n: f"C-{n:06d}")
    churn_probability = 0.7
    risk_level = factory.LazyAttribute(lambda p: level_for(p.churn_probability))
    recommendations = factory.LazyAttribute(lambda p: [f"Recommendation for {p.risk_level} risk."])
    top_factors = factory.LazyFunction(
        lambda: [{"feature": "contract_type", "impact": 0.61}, {"feature": "tenure_months", "impact": -0.12}]
    )
    model_version = factory.LazyFunction(lambda: ModelVersionFactory())
    created_at = factory.LazyFunction(timezone.now)


def scored_customer(customer_id: str, probability: float, *, days_ago: float = 0, **customer_fields):  # type: ignore[no-untyped-def]
    """A stored customer with one prediction at the given probability."""
    customer = CustomerFactory(customer_id=customer_id, **customer_fields)
    PredictionFactory(
        customer_id=customer_id,
        churn_probability=probability,
        created_at=timezone.now() - timedelta(days=days_ago),
    )
    return customer


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RetentionCampaign

    department = factory.LazyFunction(lambda: DepartmentFactory(name="retention"))
    name = factory.Sequence(lambda n: f"Campaign {n}")
    goal = "Keep high-risk customers"
    target_risk_levels = factory.LazyFunction(lambda: ["high", "critical"])
    action = CampaignAction.DISCOUNT
    discount_percent = 15
    control_share = 0.10


class TargetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CampaignTarget

    campaign = factory.SubFactory(CampaignFactory)
    customer = factory.SubFactory(CustomerFactory)
    group = TargetGroup.TREATMENT
    in_active_campaign = True
    follow_up_status = factory.LazyAttribute(
        lambda t: FollowUpStatus.DO_NOT_CONTACT if t.group == TargetGroup.CONTROL else FollowUpStatus.TO_DO
    )
    qualifying_probability = 0.7
    qualifying_risk_level = "high"
    monthly_charges = factory.LazyAttribute(lambda t: t.customer.monthly_charges)
    due_date = factory.LazyFunction(lambda: timezone.localdate() + timedelta(days=7))
