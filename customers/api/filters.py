from __future__ import annotations

import django_filters

from churn_infra.datetimes import IsoDateTimeFilter
from customers.filters import BOUND_FILTERS, DEPRECATED_FILTERS
from customers.models import Customer


def _bound(name: str) -> django_filters.NumberFilter:
    field, lookup = BOUND_FILTERS[name]
    return django_filters.NumberFilter(field_name=field, lookup_expr=lookup)


def _deprecated(name: str) -> django_filters.NumberFilter:
    field, lookup = BOUND_FILTERS[DEPRECATED_FILTERS[name]]
    return django_filters.NumberFilter(
        field_name=field, lookup_expr=lookup, label=f"Deprecated: use {DEPRECATED_FILTERS[name]}."
    )


class CustomerFilter(django_filters.FilterSet):
    """The customer filter vocabulary (customers.filters) for GET customers/ and batch jobs' ``filter``."""

    customer_id_prefix = django_filters.CharFilter(field_name="customer_id", lookup_expr="startswith")
    updated_since = IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")
    min_tenure_months = _bound("min_tenure_months")
    max_tenure_months = _bound("max_tenure_months")
    min_monthly_charges = _bound("min_monthly_charges")
    max_monthly_charges = _bound("max_monthly_charges")
    min_tenure = _deprecated("min_tenure")
    max_tenure = _deprecated("max_tenure")
    has_warnings = django_filters.BooleanFilter(method="filter_has_warnings")

    class Meta:
        model = Customer
        fields = ("contract_type", "internet_service", "payment_method", "senior_citizen", "source")

    def filter_has_warnings(self, queryset, name, value):  # type: ignore[no-untyped-def]
        return queryset.exclude(quality_warnings=[]) if value else queryset.filter(quality_warnings=[])
