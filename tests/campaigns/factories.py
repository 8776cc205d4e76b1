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


def hand_computed_campaign(*, alice, bob, department=None):  # type: ignore[no-untyped-def]
    """The campaign of the hand-computed example (all bills 50/month, 20% offers for 3 months, 12-month horizon).

    Treatment, 80 targets: alice 35 (30 known, 27 retained), bob 45 (40 known, 29 retained);
    together 70 known, 56 retained = 80%. Control, 80 targets: all known, 48 retained = 60%.
    10 treatment targets accepted the offer (cost 10 x 50 x 20% x 3 = 300).
    Figures: uplift 0.20, 95% CI (Newcombe) 0.0524..0.3339, saved 0.2 x 80 = 16,
    revenue kept 16 x 50 x 12 = 9,600, net 9,300. Alice: uplift 0.30, saved 0.3 x 35 = 10.5.
    """
    from customers.models import Customer

    campaign = CampaignFactory(
        department=department or DepartmentFactory(name="retention"),
        status="active",
        discount_percent=20,
        offer_months=3,
        horizon_months=12,
    )
    rows = []  # (group, assignee, outcome, status)
    for i in range(35):
        rows.append(
            (
                "treatment",
                alice,
                "unknown" if i < 5 else ("retained" if i < 32 else "churned"),
                "offer_accepted" if i < 6 else "contacted",
            )
        )
    for i in range(45):
        rows.append(
            (
                "treatment",
                bob,
                "unknown" if i < 5 else ("retained" if i < 34 else "churned"),
                "offer_accepted" if i < 4 else "to_do",
            )
        )
    for i in range(80):
        rows.append(("control", None, "retained" if i < 48 else "churned", "do_not_contact"))
    prefix = f"H{campaign.pk}"
    customers = Customer.objects.bulk_create(
        [CustomerFactory.build(customer_id=f"{prefix}-{i:03d}", monthly_charges=50.0) for i in range(len(rows))]
    )
    CampaignTarget.objects.bulk_create(
        [
            CampaignTarget(
                campaign=campaign,
                customer=customer,
                group=group,
                assignee=assignee,
                outcome=outcome,
                follow_up_status=status,
                qualifying_probability=0.75,
                qualifying_risk_level="high",
                monthly_charges=50.0,
                due_date=timezone.localdate() + timedelta(days=3),
            )
            for customer, (group, assignee, outcome, status) in zip(customers, rows, strict=True)
        ]
    )
    return campaign
