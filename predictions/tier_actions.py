"""Recommendations and offer per risk level, edited by operators and cached for two seconds per process."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from django.db import transaction

from accounts.services import Actor, audit_record
from churn_infra.errors import InputError
from predictions.models import RiskTierAction

_TIER_TTL_SECONDS = 2.0
_tier_lock = threading.Lock()
_tier_cache: tuple[float, dict[str, TierAction]] | None = None


class TierAction(NamedTuple):
    """What a prediction at a level carries: the texts, and the offer or None."""

    recommendations: list[str]
    offer: dict[str, Any] | None


def tier_offer(discount_percent: Any, months: int | None) -> dict[str, Any] | None:
    """The contract's ``offer`` of a tier: ``{"discount_percent", "months"}``, or None without a discount."""
    if discount_percent is None:
        return None
    return {"discount_percent": float(discount_percent), "months": months}


def tier_actions() -> dict[str, TierAction]:
    """{level: TierAction}; an edit applies within two seconds (at once in this process)."""
    global _tier_cache
    cached = _tier_cache
    now = time.monotonic()
    if cached is not None and now - cached[0] < _TIER_TTL_SECONDS:
        return cached[1]
    with _tier_lock:
        rows = RiskTierAction.objects.values_list(
            "risk_level", "recommendations", "offer_discount_percent", "offer_months"
        )
        actions = {
            level: TierAction(list(texts), tier_offer(percent, months)) for level, texts, percent, months in rows
        }
        _tier_cache = (now, actions)
        return actions


def forget_tier_actions() -> None:
    global _tier_cache
    _tier_cache = None


NO_TIER = TierAction([], None)
TIER_EDITABLE_FIELDS = ("recommendations", "offer_discount_percent", "offer_months")
_MAX_RECOMMENDATIONS = 20
_MAX_RECOMMENDATION_CHARS = 500


def _clean_tier_changes(tier: RiskTierAction, changes: Mapping[str, Any]) -> dict[str, Any]:
    """The changes validated and merged with the tier's current values; TierActionError names each bad field."""
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(changes) - set(TIER_EDITABLE_FIELDS))
    for name in unknown:
        errors[name] = [f"Unknown field; editable: {', '.join(TIER_EDITABLE_FIELDS)}."]
    texts = changes.get("recommendations", tier.recommendations)
    if not isinstance(texts, list) or not all(isinstance(t, str) and t.strip() for t in texts):
        errors["recommendations"] = ["Must be a list of non-empty texts."]
    elif len(texts) > _MAX_RECOMMENDATIONS or any(len(t) > _MAX_RECOMMENDATION_CHARS for t in texts):
        errors["recommendations"] = [
            f"At most {_MAX_RECOMMENDATIONS} texts of at most {_MAX_RECOMMENDATION_CHARS} characters."
        ]
    else:
        texts = [t.strip() for t in texts]
    percent = changes.get("offer_discount_percent", tier.offer_discount_percent)
    if percent is not None and not isinstance(percent, bool):
        try:
            percent = Decimal(str(percent)).quantize(Decimal("0.01"))
        except InvalidOperation:
            percent = None
            errors["offer_discount_percent"] = ["Must be a number or null."]
        else:
            if not percent.is_finite() or not Decimal(0) < percent <= Decimal(100):
                errors["offer_discount_percent"] = ["Must be above 0 and at most 100, or null for no offer."]
    elif isinstance(percent, bool):
        errors["offer_discount_percent"] = ["Must be a number or null."]
    months = changes.get("offer_months", tier.offer_months)
    removed = "offer_discount_percent" in changes and changes["offer_discount_percent"] is None
    if removed and "offer_months" not in changes:
        months = None  # removing the discount removes its duration
    if months is not None and (isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= 120):
        errors["offer_months"] = ["Must be a whole number of months from 1 to 120, or null."]
    elif percent is not None and months is None and "offer_discount_percent" not in errors:
        errors["offer_months"] = ["A discount needs the months it is given for."]
    elif percent is None and months is not None and "offer_discount_percent" not in errors:
        errors["offer_months"] = ["Only a tier with a discount has offer months."]
    if errors:
        raise TierActionError(errors)
    return {"recommendations": texts, "offer_discount_percent": percent, "offer_months": months}


class TierActionError(InputError):
    """A tier edit that cannot be applied; ``errors`` maps fields to messages."""


def tier_action_check(*, risk_level: str, changes: Mapping[str, Any]) -> None:
    """Raise TierActionError if the edit would be refused (the admin form shows the errors)."""
    _clean_tier_changes(RiskTierAction.objects.get(risk_level=risk_level), changes)


@transaction.atomic
def tier_action_update(*, risk_level: str, changes: Mapping[str, Any], actor: Actor) -> RiskTierAction:
    """Edit a risk level's recommendations and offer, with its audit entry in the same transaction.

    The one writer of tiers (API and admin). Raises RiskTierAction.DoesNotExist for an unknown
    level and TierActionError for bad values. Predictions pick the edit up within two seconds.
    """
    tier = RiskTierAction.objects.select_for_update().get(risk_level=risk_level)
    clean = _clean_tier_changes(tier, changes)
    before = {name: _audit_value(getattr(tier, name)) for name in TIER_EDITABLE_FIELDS}
    for name, value in clean.items():
        setattr(tier, name, value)
    after = {name: _audit_value(getattr(tier, name)) for name in TIER_EDITABLE_FIELDS}
    changed = {
        name: {"from": before[name], "to": after[name]} for name in TIER_EDITABLE_FIELDS if before[name] != after[name]
    }
    if changed:
        tier.save(update_fields=[*changed, "updated_at"])
    audit_record(actor=actor, action="tier.update", obj=tier, object_id=tier.risk_level, details={"changes": changed})
    transaction.on_commit(forget_tier_actions)
    forget_tier_actions()
    return tier


def _audit_value(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value
