"""A campaign's specification checked before it is stored: target rule, customer filters, playbook, offer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils import timezone

from campaigns.models import (
    CampaignAction,
    CampaignSelection,
)
from campaigns.selectors.access import assignable_users
from campaigns.services.common import (
    CampaignError,
)
from customers.filters import clean_customer_filters
from predictions.models import RiskLevel
from predictions.tier_actions import TierAction, tier_actions


def clean_target_filters(value: Any) -> dict[str, Any]:
    """Validate the optional customer filters of a target rule (customers.filters), plus risk_increased."""
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise CampaignError({"target_filters": ["Expected an object of filters."]})
    out, rest, errors = clean_customer_filters(value)
    for name, raw in rest.items():
        if name != "risk_increased":
            errors.append(f"{name}: unknown filter.")
        elif raw is not None and raw is not False:
            if not isinstance(raw, bool):
                errors.append(f"{name}: expected true or false.")
            else:
                out[name] = raw
    if errors:
        raise CampaignError({"target_filters": errors})
    return out


@dataclass
class CampaignSpec:
    """What a caller may set on a new campaign; defaults are the model's."""

    name: str
    action: str
    goal: str = ""
    owner_id: int | None = None
    target_risk_levels: list[str] | None = None
    target_min_probability: float | None = None
    target_filters: dict[str, Any] | None = None
    discount_percent: Decimal | float | str | None = None
    action_details: str = ""
    control_share: float = 0.10
    start_date: date | None = None
    end_date: date | None = None
    horizon_months: int = 12
    offer_months: int | None = None
    follow_up_days: int = 7
    selection: str = CampaignSelection.THRESHOLD
    save_rate_prior: float | None = None
    budget_offers: int | None = None
    budget_money: Decimal | float | str | None = None
    playbook: list[dict[str, Any]] | None = None


PLAYBOOK_MAX_STEPS = 10


def clean_playbook(value: Any) -> list[dict[str, Any]]:
    """A checklist of {"day", "step"} in day order: days 0..365, a short text each, at most 10 steps."""
    if value in (None, ""):
        return []
    if not isinstance(value, list):
        raise CampaignError({"playbook": ['Expected a list such as [{"day": 0, "step": "Call"}].']})
    if len(value) > PLAYBOOK_MAX_STEPS:
        raise CampaignError({"playbook": [f"At most {PLAYBOOK_MAX_STEPS} steps."]})
    steps = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or set(item) - {"day", "step"}:
            raise CampaignError({"playbook": [f'Step {i + 1}: expected {{"day": n, "step": "text"}}.']})
        day, text = item.get("day"), str(item.get("step") or "").strip()
        if not isinstance(day, int) or isinstance(day, bool) or not 0 <= day <= 365:
            raise CampaignError({"playbook": [f"Step {i + 1}: day must be a whole number from 0 to 365."]})
        if not text or len(text) > 120:
            raise CampaignError({"playbook": [f"Step {i + 1}: the step needs a text of at most 120 characters."]})
        steps.append({"day": day, "step": text})
    return sorted(steps, key=lambda s: s["day"])


def _clean_selection(spec: CampaignSpec, errors: dict[str, list[str]]) -> dict[str, Any]:
    """Value selection's settings: a known mode, a save rate in 0..1, non-negative budgets."""
    if spec.selection not in CampaignSelection.values:
        errors["selection"] = [f"Must be one of {', '.join(CampaignSelection.values)}."]
    if spec.save_rate_prior is not None and not 0 <= spec.save_rate_prior <= 1:
        errors["save_rate_prior"] = ["Must be between 0 and 1 (0.15: a contact keeps 15% of would-be churners)."]
    if spec.budget_offers is not None and spec.budget_offers < 1:
        errors["budget_offers"] = ["Must be at least 1 offer."]
    money = None
    if spec.budget_money not in (None, ""):
        try:
            money = Decimal(str(spec.budget_money)).quantize(Decimal("0.01"))
        except InvalidOperation:
            errors["budget_money"] = ["Must be an amount."]
        else:
            if money < 0:
                errors["budget_money"] = ["Cannot be negative."]
    if spec.selection == CampaignSelection.THRESHOLD and (spec.budget_offers is not None or money is not None):
        errors["selection"] = ["A budget needs selection by value."]
    return {
        "selection": spec.selection,
        "save_rate_prior": spec.save_rate_prior,
        "budget_offers": spec.budget_offers,
        "budget_money": money,
    }


DEFAULT_OFFER_MONTHS = 3


def tier_default_offer(levels: Sequence[str]) -> dict[str, Any] | None:
    """The offer of the riskiest targeted level that has one: a campaign for a tier offers what the tier does."""
    offers = tier_actions()
    for level in reversed(RiskLevel.values):
        if level in levels and (offer := offers.get(level, TierAction([], None)).offer) is not None:
            return offer
    return None


def _clean_spec(spec: CampaignSpec, *, department_id: int) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    name = (spec.name or "").strip()
    if not name:
        errors["name"] = ["A campaign needs a name."]
    elif len(name) > 200:
        errors["name"] = ["At most 200 characters."]
    levels = list(dict.fromkeys(spec.target_risk_levels or []))
    bad_levels = [lv for lv in levels if lv not in RiskLevel.values]
    if bad_levels:
        errors["target_risk_levels"] = [f"Unknown risk levels {bad_levels}; use {', '.join(RiskLevel.values)}."]
    minimum = spec.target_min_probability
    if minimum is not None and not 0 <= minimum <= 1:
        errors["target_min_probability"] = ["Must be between 0 and 1."]
    if not levels and minimum is None:
        errors["target_risk_levels"] = ["The target rule needs risk levels or a minimum probability."]
    try:
        filters = clean_target_filters(spec.target_filters)
    except CampaignError as exc:
        errors.update(exc.errors)
        filters = {}
    if spec.action not in CampaignAction.values:
        errors["action"] = [f"Must be one of {', '.join(CampaignAction.values)}."]
    discount = None
    tier_offer = tier_default_offer(levels) if spec.action == CampaignAction.DISCOUNT else None
    offer_months = spec.offer_months
    if offer_months is None:
        offer_months = tier_offer["months"] if tier_offer and tier_offer.get("months") else DEFAULT_OFFER_MONTHS
    if spec.discount_percent in (None, "") and tier_offer is not None:
        discount = Decimal(str(tier_offer["discount_percent"])).quantize(Decimal("0.01"))
    elif spec.discount_percent not in (None, ""):
        try:
            discount = Decimal(str(spec.discount_percent)).quantize(Decimal("0.01"))
        except InvalidOperation:
            errors["discount_percent"] = ["Must be a number."]
        else:
            if not Decimal(0) < discount <= Decimal(100):
                errors["discount_percent"] = ["Must be above 0 and at most 100."]
    if spec.action == CampaignAction.DISCOUNT and discount is None and "discount_percent" not in errors:
        errors["discount_percent"] = [
            "A discount campaign needs the discount percent. None of its target risk levels has an offer to default to."
        ]
    if spec.action != CampaignAction.DISCOUNT and discount is not None:
        errors["discount_percent"] = ["Only a discount campaign has a discount."]
    if spec.action == CampaignAction.CUSTOM and not spec.action_details.strip():
        errors["action_details"] = ["Describe the custom action."]
    if not 0 <= spec.control_share <= 0.9:
        errors["control_share"] = ["Must be between 0 and 0.9 (0.1 holds out 10%)."]
    start = spec.start_date or timezone.localdate()
    if spec.end_date is not None and spec.end_date < start:
        errors["end_date"] = ["Cannot be before the start date."]
    for name_, value, low, high in (
        ("horizon_months", spec.horizon_months, 1, 120),
        ("offer_months", offer_months, 0, 120),
        ("follow_up_days", spec.follow_up_days, 0, 365),
    ):
        if not low <= value <= high:
            errors[name_] = [f"Must be between {low} and {high}."]
    if (
        spec.owner_id is not None
        and not assignable_users(department_id=department_id).filter(pk=spec.owner_id).exists()
    ):
        errors["owner"] = ["The owner must be an active staff member of the campaign's department."]
    selection = _clean_selection(spec, errors)
    try:
        playbook = clean_playbook(spec.playbook)
    except CampaignError as exc:
        errors.update(exc.errors)
        playbook = []
    if errors:
        raise CampaignError(errors)
    return {
        "name": name,
        "goal": spec.goal.strip(),
        "owner_id": spec.owner_id,
        "target_risk_levels": levels,
        "target_min_probability": minimum,
        "target_filters": filters,
        "action": spec.action,
        "discount_percent": discount,
        "action_details": spec.action_details.strip(),
        "control_share": spec.control_share,
        "start_date": start,
        "end_date": spec.end_date,
        "horizon_months": spec.horizon_months,
        "offer_months": offer_months,
        "follow_up_days": spec.follow_up_days,
        "playbook": playbook,
        **selection,
    }
