from __future__ import annotations

import django_filters

from churn_infra.datetimes import IsoDateTimeFilter
from customers.models import Customer


class CustomerFilter(django_filters.FilterSet):
    customer_id_prefix = django_filters.CharFilter(field_name="customer_id", lookup_expr="startswith")
    updated_since = IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")
    min_tenure = django_filters.NumberFilter(field_name="tenure_months", lookup_expr="gte")
    max_tenure = django_filters.NumberFilter(field_name="tenure_months", lookup_expr="lte")
    has_warnings = django_filters.BooleanFilter(method="filter_has_warnings")

    class Meta:
        model = Customer
        fields = ("contract_type", "internet_service", "payment_method", "senior_citizen", "source")

    def filter_has_warnings(self, queryset, name, value):  # type: ignore[no-untyped-def]
        return queryset.exclude(quality_warnings=[]) if value else queryset.filter(quality_warnings=[])
