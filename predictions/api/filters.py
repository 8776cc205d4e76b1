from __future__ import annotations

import django_filters

from churn_infra.datetimes import IsoDateTimeFilter
from predictions.models import Prediction, RiskLevel


class PredictionFilter(django_filters.FilterSet):
    customer_id = django_filters.CharFilter()
    risk_level = django_filters.MultipleChoiceFilter(choices=RiskLevel.choices)
    since = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    model_version = django_filters.CharFilter(field_name="model_version__version")
    batch_job = django_filters.NumberFilter(field_name="batch_job_id")
    risk_increased = django_filters.BooleanFilter(help_text="Batch jobs: the level rose since the previous prediction.")

    class Meta:
        model = Prediction
        fields = ("customer_id", "risk_level", "since", "until", "model_version", "source", "batch_job",
                  "risk_increased")
