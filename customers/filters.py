"""The customer filter vocabulary: one set of names for the customer list (GET customers/), batch
jobs' ``filter`` and campaigns' ``target_filters`` (docs/API_CONTRACT.md, "Customer filters").

``contract_type``, ``internet_service``, ``payment_method``: a value of the record schema (a list
of them where the filter is a JSON object: any of); ``senior_citizen``: true or false;
``min_tenure_months``, ``max_tenure_months``, ``min_monthly_charges``, ``max_monthly_charges``:
bounds, inclusive. The old spellings ``min_tenure`` and ``max_tenure`` are accepted and
deprecated: they mean ``min_tenure_months`` and ``max_tenure_months``.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from churn_ml.schema import ENUM_FIELDS

LIST_FILTERS = ("contract_type", "internet_service", "payment_method")
# name -> (field, lookup)
BOUND_FILTERS = {
    "min_tenure_months": ("tenure_months", "gte"),
    "max_tenure_months": ("tenure_months", "lte"),
    "min_monthly_charges": ("monthly_charges", "gte"),
    "max_monthly_charges": ("monthly_charges", "lte"),
}
BOOLEAN_FILTERS = ("senior_citizen",)
DEPRECATED_FILTERS = {"min_tenure": "min_tenure_months", "max_tenure": "max_tenure_months"}
CUSTOMER_FILTERS = (*LIST_FILTERS, *BOOLEAN_FILTERS, *BOUND_FILTERS)


def canonical_filter_name(name: str) -> str:
    return DEPRECATED_FILTERS.get(name, name)


def clean_customer_filters(value: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(the customer filters in canonical names and spelling, the other entries, errors).

    Enumerations match case-insensitively and are stored as the schema spells them, as lists;
    an unset bound or boolean (null) is dropped.
    """
    errors: list[str] = []
    out: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for given, raw in value.items():
        name = canonical_filter_name(given)
        if name in LIST_FILTERS:
            items = raw if isinstance(raw, list) else [raw]
            canonical = {v.lower(): v for v in ENUM_FIELDS[name]}
            picked: list[str] = []
            for item in items:
                match = canonical.get(str(item).strip().lower())
                if match is None:
                    errors.append(f"{name}: {item!r} is not one of {', '.join(ENUM_FIELDS[name])}.")
                elif match not in picked:
                    picked.append(match)
            if picked:
                out[name] = picked
        elif name in BOUND_FILTERS:
            if raw is None:
                continue
            if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0:
                errors.append(f"{given}: expected a number of at least 0.")
            else:
                out[name] = raw
        elif name in BOOLEAN_FILTERS:
            if raw is None:
                continue
            if not isinstance(raw, bool):
                errors.append(f"{name}: expected true or false.")
            else:
                out[name] = raw
        else:
            rest[given] = raw
    for low, high in (("min_tenure_months", "max_tenure_months"), ("min_monthly_charges", "max_monthly_charges")):
        if low in out and high in out and out[low] > out[high]:
            errors.append(f"{low} is above {high}.")
    return out, rest, errors


def customer_filter_q(filters: dict[str, Any]) -> Q:
    """The customers matching cleaned filters (clean_customer_filters); other entries are ignored."""
    q = Q()
    for given, value in filters.items():
        name = canonical_filter_name(given)
        if value is None or value == []:
            continue
        if name in LIST_FILTERS:
            q &= Q(**{f"{name}__in": value if isinstance(value, list) else [value]})
        elif name in BOOLEAN_FILTERS:
            q &= Q(**{name: value})
        elif name in BOUND_FILTERS:
            field, lookup = BOUND_FILTERS[name]
            q &= Q(**{f"{field}__{lookup}": value})
    return q
