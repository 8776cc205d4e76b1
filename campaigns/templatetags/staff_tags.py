"""Formatting for the staff pages: percentages, money, and prediction factors in words."""

from __future__ import annotations

from typing import Any

from babel.numbers import format_currency
from django import template
from django.conf import settings
from django.utils.http import urlencode

register = template.Library()

FIELD_LABELS = {
    "gender": "Gender",
    "senior_citizen": "Senior citizen",
    "partner": "Has a partner",
    "dependents": "Has dependents",
    "tenure_months": "Tenure",
    "phone_service": "Phone service",
    "multiple_lines": "Multiple lines",
    "internet_service": "Internet service",
    "online_security": "Online security",
    "online_backup": "Online backup",
    "device_protection": "Device protection",
    "tech_support": "Tech support",
    "streaming_tv": "Streaming TV",
    "streaming_movies": "Streaming movies",
    "contract_type": "Contract",
    "paperless_billing": "Paperless billing",
    "payment_method": "Payment method",
    "monthly_charges": "Monthly charges",
    "total_charges": "Total charges",
    "age": "Age",
    "income": "Income",
}

# Impacts are contributions to the model's log-odds: 0.5 moves a 50% probability to about 62%.
STRONG_IMPACT = 0.5
NOTICEABLE_IMPACT = 0.15


@register.filter
def pct(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.{int(digits)}f}%"


@register.filter
def points(value: float | None) -> str:
    """A difference of two rates in percentage points, with its sign."""
    if value is None:
        return "—"
    return f"{value * 100:+.1f} pts"


@register.filter
def money(value: float | None) -> str:
    """An amount in the configured currency, written the configured locale's way ($1,234.50, 1.234,50 €)."""
    if value is None:
        return "—"
    return format_currency(value, settings.CURRENCY, locale=settings.CURRENCY_LOCALE)


@register.filter
def number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{int(digits)}f}"


@register.filter
def get_item(mapping: dict[str, Any], key: str) -> Any:
    return mapping.get(key) if isinstance(mapping, dict) else None


def _value_words(name: str, value: Any) -> str:
    if value is None:
        return "not given"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if name == "tenure_months":
        return f"{value} month" if value == 1 else f"{value} months"
    if name in {"monthly_charges", "total_charges"}:
        return f"{value:,.2f}"
    return str(value)


@register.simple_tag
def factor_words(factor: dict[str, Any], customer: Any = None) -> str:
    """'Contract (Month-to-month) raises the churn risk strongly' from {"feature", "impact"}."""
    name = str(factor.get("feature", ""))
    impact = float(factor.get("impact") or 0.0)
    label = FIELD_LABELS.get(name, name.replace("_", " ").capitalize())
    if customer is not None and hasattr(customer, name):
        label = f"{label} ({_value_words(name, getattr(customer, name))})"
    direction = "raises" if impact > 0 else "lowers"
    size = abs(impact)
    strength = "strongly" if size >= STRONG_IMPACT else ("noticeably" if size >= NOTICEABLE_IMPACT else "slightly")
    return f"{label} {direction} the churn risk {strength}"


@register.simple_tag(takes_context=True)
def query_with(context: Any, **changes: Any) -> str:
    """The current query string with some parameters replaced (for sort links and pagination)."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        if value in (None, ""):
            params.pop(key, None)
        else:
            params[key] = value
    return "?" + urlencode(sorted(params.items())) if params else "?"
