from __future__ import annotations

import django_filters

from predictions.models import Prediction, RiskLevel


class PredictionFilter(django_filters.FilterSet):
    customer_id = django_filters.CharFilter()
    risk_level = django_filters.MultipleChoiceFilter(choices=RiskLevel.choices)
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    model_version = django_filters.CharFilter(field_name="model_version__version")

    class Meta:
        model = Prediction
        fields = ("customer_id", "risk_level", "since", "until", "model_version", "source")
