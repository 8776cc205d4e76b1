from __future__ import annotations

from typing import Any

from rest_framework import serializers

from campaigns.models import (
    CampaignAction,
    CampaignSelection,
    CampaignTarget,
    FollowUpStatus,
    RetentionCampaign,
    TargetNote,
    TargetOutcome,
)
from campaigns.selectors.effectiveness import AssigneeEffect, Effectiveness
from campaigns.stats import Effect, GroupCounts
from predictions.models import RiskLevel


class StrictSerializer(serializers.Serializer):
    """Input serializer that refuses fields it does not know (the contract: unknown fields are errors)."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class TargetRuleSerializer(serializers.Serializer):
    risk_levels = serializers.ListField(child=serializers.CharField(), source="target_risk_levels")
    min_probability = serializers.FloatField(source="target_min_probability", allow_null=True)
    filters = serializers.DictField(source="target_filters")


class CampaignCountsSerializer(serializers.Serializer):
    targets = serializers.IntegerField(source="target_count")
    treatment = serializers.IntegerField(source="treatment_count")
    control = serializers.IntegerField(source="control_count")


class CampaignSerializer(serializers.ModelSerializer):
    """A retention campaign: its rule, its action, its control share and how many it enrolled."""

    department = serializers.CharField(source="department.name")
    owner = serializers.CharField(source="owner.username", default=None, allow_null=True)
    target_rule = TargetRuleSerializer(source="*")
    discount_percent = serializers.FloatField(allow_null=True)
    budget_money = serializers.FloatField(allow_null=True)
    projection = serializers.JSONField(help_text="What the enrolments expected (the preview's figures, summed).")
    playbook = serializers.ListField(
        source="playbook_steps", child=serializers.DictField(), help_text="The checklist staff follow (or the default)."
    )
    counts = serializers.SerializerMethodField()

    class Meta:
        model = RetentionCampaign
        fields = (
            "id", "name", "goal", "department", "owner", "status", "target_rule", "action", "discount_percent",
            "action_details", "control_share", "start_date", "end_date", "horizon_months", "offer_months",
            "follow_up_days", "playbook", "selection", "save_rate_prior", "budget_offers", "budget_money", "projection",
            "counts", "enrolled_at", "closed_at", "created_at", "updated_at",
        )  # fmt: skip
        read_only_fields = fields

    def get_counts(self, obj: RetentionCampaign) -> dict[str, int] | None:
        if not hasattr(obj, "target_count"):
            return None
        return CampaignCountsSerializer(obj).data  # type: ignore[return-value]


class CampaignCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    goal = serializers.CharField(required=False, allow_blank=True, default="")
    owner = serializers.CharField(required=False, allow_null=True, default=None, help_text="A staff username.")
    department = serializers.CharField(
        required=False, allow_null=True, default=None, help_text="Superusers only: the owning department's name."
    )
    target_risk_levels = serializers.ListField(
        child=serializers.ChoiceField(choices=RiskLevel.choices), required=False, default=list
    )
    target_min_probability = serializers.FloatField(required=False, allow_null=True, default=None)
    target_filters = serializers.DictField(required=False, default=dict)
    action = serializers.ChoiceField(choices=CampaignAction.choices)
    discount_percent = serializers.DecimalField(
        max_digits=5, decimal_places=2, required=False, allow_null=True, default=None,
        help_text="Discount campaigns: default, the offer of the riskiest targeted tier that has one.",
    )
    action_details = serializers.CharField(required=False, allow_blank=True, default="")
    control_share = serializers.FloatField(required=False, default=0.10)
    start_date = serializers.DateField(required=False, allow_null=True, default=None)
    end_date = serializers.DateField(required=False, allow_null=True, default=None)
    horizon_months = serializers.IntegerField(required=False, default=12)
    offer_months = serializers.IntegerField(
        required=False, allow_null=True, default=None,
        help_text="Months an accepted discount lasts; default: the targeted tier's offer months, else 3.",
    )
    follow_up_days = serializers.IntegerField(required=False, default=7)
    selection = serializers.ChoiceField(choices=CampaignSelection.choices, required=False, default="threshold")
    save_rate_prior = serializers.FloatField(
        required=False, allow_null=True, default=None,
        help_text="Share of would-be churners a contact keeps, until the campaign measures its uplift.",
    )
    budget_offers = serializers.IntegerField(required=False, allow_null=True, default=None)
    budget_money = serializers.DecimalField(
        max_digits=12, decimal_places=2, required=False, allow_null=True, default=None
    )
    playbook = serializers.ListField(
        child=serializers.DictField(), required=False, default=list,
        help_text='Steps with their day offset: [{"day": 0, "step": "Call"}]; empty: the action\'s default.',
    )


class PreviewSerializer(serializers.Serializer):
    """What an enrolment done now would take and is expected to achieve (campaigns/{id}/preview/)."""

    matched = serializers.IntegerField(help_text="Customers matching the rule.")
    selected = serializers.IntegerField(help_text="Of those not yet enrolled anywhere, the ones chosen.")
    treatment = serializers.IntegerField()
    control = serializers.IntegerField()
    already_enrolled = serializers.IntegerField()
    in_other_campaign = serializers.IntegerField()
    over_limit = serializers.IntegerField()
    expected_saves = serializers.FloatField(help_text="Sum over treated of p(churn) x save rate.")
    expected_revenue_kept = serializers.FloatField(help_text="Sum of p x save rate x monthly charges x horizon.")
    offer_cost = serializers.FloatField(help_text="Sum of discount x monthly charges x offer months.")
    expected_net = serializers.FloatField()
    expected_saves_ci95 = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    expected_revenue_kept_ci95 = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    save_rate = serializers.FloatField()
    save_rate_source = serializers.ChoiceField(choices=["measured uplift", "campaign prior", "default prior"])
    small_sample = serializers.BooleanField(help_text="The measured uplift rests on fewer than 30 outcomes a group.")


class EnrolSerializer(StrictSerializer):
    assignees = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        default=list,
        help_text="Staff usernames; treatment targets are dealt round-robin among them.",
    )
    limit = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)


class EnrolResultSerializer(serializers.Serializer):
    matched = serializers.IntegerField()
    enrolled = serializers.IntegerField()
    treatment = serializers.IntegerField()
    control = serializers.IntegerField()
    already_enrolled = serializers.IntegerField()
    in_other_campaign = serializers.IntegerField()
    over_limit = serializers.IntegerField()
    in_other_campaign_by_department = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Customers skipped because another active campaign holds them, by that campaign's department.",
    )
    campaign = CampaignSerializer()


class NoteSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author_label")

    class Meta:
        model = TargetNote
        fields = ("id", "author", "text", "created_at")
        read_only_fields = fields


class QualifyingPredictionSerializer(serializers.Serializer):
    prediction_id = serializers.UUIDField(source="prediction.prediction_id", default=None, allow_null=True)
    churn_probability = serializers.FloatField(source="qualifying_probability")
    risk_level = serializers.CharField(source="qualifying_risk_level")


class NextStepSerializer(serializers.Serializer):
    number = serializers.IntegerField(help_text="0-based: steps done so far.")
    of = serializers.IntegerField()
    step = serializers.CharField()
    day = serializers.IntegerField()
    due = serializers.DateField(allow_null=True)


class CampaignTargetSerializer(serializers.ModelSerializer):
    """One follow-up: the customer, its group, who handles it, its status, outcome and notes."""

    customer_id = serializers.CharField(
        source="customer.customer_id", allow_null=True, help_text="Null once the customer has been erased."
    )
    campaign = serializers.IntegerField(source="campaign_id")
    assignee = serializers.CharField(source="assignee.username", default=None)
    qualifying_prediction = QualifyingPredictionSerializer(source="*")
    notes = NoteSerializer(many=True)
    next_step = NextStepSerializer(allow_null=True, help_text="The playbook step to do next; null when done.")

    class Meta:
        model = CampaignTarget
        fields = (
            "id", "campaign", "customer_id", "group", "assignee", "follow_up_status", "due_date", "contacted_at",
            "outcome", "outcome_source", "outcome_at", "qualifying_prediction", "monthly_charges", "steps_done",
            "next_step", "notes",
            "created_at", "updated_at",
        )  # fmt: skip
        read_only_fields = fields


class CampaignTargetUpdateSerializer(StrictSerializer):
    follow_up_status = serializers.ChoiceField(choices=FollowUpStatus.choices, required=False)
    assignee = serializers.CharField(required=False, allow_null=True, help_text="A staff username; null unassigns.")
    due_date = serializers.DateField(required=False, allow_null=True)
    outcome = serializers.ChoiceField(choices=TargetOutcome.choices, required=False)
    note = serializers.CharField(required=False, allow_blank=True, max_length=5000, help_text="Adds a note.")


# --- effectiveness: one mapper from the selector's dataclasses to the public JSON ----------------


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _group_as_dict(counts: GroupCounts) -> dict[str, Any]:
    return {
        "targets": counts.targets,
        "outcomes_known": counts.known,
        "retained": counts.retained,
        "churned": counts.known - counts.retained,
        "retention_rate": _round(counts.retention_rate, 4),
    }


def _effect_as_dict(effect: Effect) -> dict[str, Any]:
    return {
        "uplift": _round(effect.uplift, 4),
        "uplift_ci_95": None
        if effect.uplift is None
        else {"low": _round(effect.uplift_low, 4), "high": _round(effect.uplift_high, 4)},
        "customers_saved": _round(effect.customers_saved, 2),
        "revenue_kept": _round(effect.revenue_kept, 2),
        "offer_cost": round(effect.offer_cost, 2),
        "net_value": _round(effect.net_value, 2),
        "customers_saved_ci_95": None
        if effect.saved_low is None
        else {"low": _round(effect.saved_low, 2), "high": _round(effect.saved_high, 2)},
        "revenue_kept_ci_95": None
        if effect.revenue_low is None
        else {"low": _round(effect.revenue_low, 2), "high": _round(effect.revenue_high, 2)},
        "small_sample": effect.small_sample,
    }


def _assignee_as_dict(row: AssigneeEffect) -> dict[str, Any]:
    return {
        "assignee": row.assignee if row.assignee_id is not None else None,
        "treatment": _group_as_dict(row.counts),
        **_effect_as_dict(row.effect),
        "progress": row.progress,
    }


def effectiveness_as_dict(result: Effectiveness) -> dict[str, Any]:
    return {
        "campaign_id": result.campaign_id,
        "targets": result.targets,
        "outcomes_known": result.outcomes_known,
        "treatment": _group_as_dict(result.treatment),
        "control": _group_as_dict(result.control),
        **_effect_as_dict(result.effect),
        "interval_method": result.interval_method,
        "confidence_level": result.confidence_level,
        "horizon_months": result.horizon_months,
        "progress": result.progress,
        "followed_up_share": _round(result.followed_up_share, 4),
        "per_assignee": [_assignee_as_dict(row) for row in result.per_assignee],
    }


class GroupResultSerializer(serializers.Serializer):
    targets = serializers.IntegerField()
    outcomes_known = serializers.IntegerField()
    retained = serializers.IntegerField()
    churned = serializers.IntegerField()
    retention_rate = serializers.FloatField(allow_null=True)


class IntervalSerializer(serializers.Serializer):
    low = serializers.FloatField()
    high = serializers.FloatField()


class AssigneeResultSerializer(serializers.Serializer):
    assignee = serializers.CharField(allow_null=True)
    treatment = GroupResultSerializer()
    uplift = serializers.FloatField(allow_null=True)
    uplift_ci_95 = IntervalSerializer(allow_null=True)
    customers_saved = serializers.FloatField(allow_null=True)
    revenue_kept = serializers.FloatField(allow_null=True)
    offer_cost = serializers.FloatField()
    net_value = serializers.FloatField(allow_null=True)
    customers_saved_ci_95 = IntervalSerializer(allow_null=True)
    revenue_kept_ci_95 = IntervalSerializer(allow_null=True)
    small_sample = serializers.BooleanField(help_text="Either group has fewer than 30 known outcomes.")
    progress = serializers.DictField(child=serializers.IntegerField())


class EffectivenessSerializer(serializers.Serializer):
    """Documents effectiveness_as_dict for the OpenAPI schema."""

    campaign_id = serializers.IntegerField()
    targets = serializers.IntegerField()
    outcomes_known = serializers.IntegerField()
    treatment = GroupResultSerializer()
    control = GroupResultSerializer()
    uplift = serializers.FloatField(allow_null=True)
    uplift_ci_95 = IntervalSerializer(allow_null=True)
    customers_saved = serializers.FloatField(allow_null=True)
    revenue_kept = serializers.FloatField(allow_null=True)
    offer_cost = serializers.FloatField()
    net_value = serializers.FloatField(allow_null=True)
    customers_saved_ci_95 = IntervalSerializer(allow_null=True)
    revenue_kept_ci_95 = IntervalSerializer(allow_null=True)
    small_sample = serializers.BooleanField(help_text="Either group has fewer than 30 known outcomes.")
    interval_method = serializers.CharField()
    confidence_level = serializers.FloatField()
    horizon_months = serializers.IntegerField()
    progress = serializers.DictField(child=serializers.IntegerField())
    followed_up_share = serializers.FloatField(allow_null=True)
    per_assignee = AssigneeResultSerializer(many=True)
