from __future__ import annotations

import django_filters

from campaigns.models import CampaignTarget, FollowUpStatus, TargetGroup, TargetOutcome


class CampaignTargetFilter(django_filters.FilterSet):
    group = django_filters.ChoiceFilter(choices=TargetGroup.choices)
    follow_up_status = django_filters.ChoiceFilter(choices=FollowUpStatus.choices)
    outcome = django_filters.ChoiceFilter(choices=TargetOutcome.choices)
    assignee = django_filters.CharFilter(field_name="assignee__username")
    unassigned = django_filters.BooleanFilter(field_name="assignee", lookup_expr="isnull")
    customer_id = django_filters.CharFilter(field_name="customer__customer_id")
    due_before = django_filters.DateFilter(field_name="due_date", lookup_expr="lte")

    class Meta:
        model = CampaignTarget
        fields = ("group", "follow_up_status", "outcome", "assignee", "unassigned", "customer_id", "due_before")
