"""Formatting for the staff pages: percentages, money, and prediction factors in words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from babel.numbers import format_currency
from django import template
from django.conf import settings
from django.utils.http import urlencode

from churn_ml.inputs import snapshot_fields
from churn_ml.stored_factors import expand_factor

register = template.Library()

# Impacts are changes of the model's log-odds: 0.5 moves a 50% probability to about 62%.
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


def _value_words(name: str, value: Any, *, with_unit: bool = False) -> str:
    if value is None:
        return f"{_SHORT_NAMES.get(name, name.replace('_', ' '))} not given" if with_unit else "not given"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if name == "tenure_months":
        return f"{value} month" if value == 1 else f"{value} months"
    if name in {"monthly_charges", "total_charges"}:
        amount = money(float(value))
        return f"{amount} {_UNITS[name]}" if with_unit else amount
    return str(value)


_UNITS = {"monthly_charges": "a month", "total_charges": "total"}
_SHORT_NAMES = {"monthly_charges": "monthly charges", "total_charges": "total charges"}


def _scored_values(prediction: Any, customer: Any) -> Callable[[str], Any] | None:
    """Where a factor's values come from: the record the prediction was scored with when it kept
    one, else (older predictions) the customer's current values."""
    scored = snapshot_fields(prediction.inputs) if prediction is not None else None
    if scored:
        return scored.get
    if customer is not None:
        return lambda name: getattr(customer, name, None)
    return None


@register.simple_tag
def factor_words(factor: dict[str, Any], prediction: Any = None, customer: Any = None) -> str:
    """'Tenure and charges to date (1 month, $29.85 a month, $29.85 total) raises the churn risk strongly'.

    Worded from the factor's label and the values the prediction was scored with.
    """
    item = expand_factor(factor)
    label = str(item["label"])
    fields = [str(name) for name in item["fields"]]
    impact = float(item.get("impact") or 0.0)
    values = _scored_values(prediction, customer)
    if values is not None and fields:
        if len(fields) == 1:
            shown = _value_words(fields[0], values(fields[0]))
        else:
            shown = ", ".join(_value_words(name, values(name), with_unit=True) for name in fields)
        label = f"{label} ({shown})"
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
