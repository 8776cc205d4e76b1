"""Risk levels from a churn probability, and the contract's default recommendations per level.

The thresholds are the public contract's: ``low`` p < 0.30, ``medium`` 0.30 <= p < 0.60,
``high`` 0.60 <= p < 0.80, ``critical`` p >= 0.80. Each lower bound belongs to the higher level.

The recommendation texts here are only defaults: operators edit them (and the offer) in the
database without a deploy, so they are plain data the web layer copies or overrides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import Enum
from typing import Any, Final

import numpy as np


class RiskLevel(str, Enum):
    """A risk level; its value is the lowercase word used in the API."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


RISK_LEVELS: Final = (RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH, RiskLevel.CRITICAL)
RISK_THRESHOLDS: Final = (0.30, 0.60, 0.80)
"""Lower bounds of medium, high and critical."""

_LEVEL_NAMES: Final = np.array([level.value for level in RISK_LEVELS])

DEFAULT_DISCOUNT_PERCENT: Final = 15


def risk_level(probability: float) -> RiskLevel:
    """The level of one probability. Raises ValueError outside [0, 1] or for NaN."""
    p = float(probability)
    if math.isnan(p) or p < 0.0 or p > 1.0:
        raise ValueError(f"probability must be within [0, 1]; got {probability!r}")
    if p < RISK_THRESHOLDS[0]:
        return RiskLevel.LOW
    if p < RISK_THRESHOLDS[1]:
        return RiskLevel.MEDIUM
    if p < RISK_THRESHOLDS[2]:
        return RiskLevel.HIGH
    return RiskLevel.CRITICAL


def risk_levels(probabilities: Any) -> np.ndarray:
    """Levels of many probabilities as an array of the lowercase words, vectorised.

    Raises ValueError if any probability is NaN or outside [0, 1].
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.size and (np.isnan(p).any() or p.min() < 0.0 or p.max() > 1.0):
        raise ValueError("probabilities must be within [0, 1]")
    # side="right": a probability equal to a threshold belongs to the level above it.
    return _LEVEL_NAMES[np.searchsorted(np.asarray(RISK_THRESHOLDS), p, side="right")]


def default_recommendations(discount_percent: int = DEFAULT_DISCOUNT_PERCENT) -> dict[str, tuple[str, ...]]:
    """The contract's default recommendation texts per level, with the offer filled in."""
    return {
        RiskLevel.LOW.value: ("Keep regular engagement: continue the usual communication and service.",),
        RiskLevel.MEDIUM.value: (
            "Increase touchpoints with the customer.",
            "Send a satisfaction survey.",
        ),
        RiskLevel.HIGH.value: (f"Enrol in a retention campaign with a {discount_percent}% discount offer.",),
        RiskLevel.CRITICAL.value: ("Urgent: a personal call from customer success.",),
    }


DEFAULT_RECOMMENDATIONS: Final[Mapping[str, tuple[str, ...]]] = default_recommendations()


def recommendations_for(
    level: RiskLevel | str, overrides: Mapping[str, tuple[str, ...] | list[str]] | None = None
) -> tuple[str, ...]:
    """The recommendation texts for a level: the operator's override if given, else the default."""
    key = RiskLevel(level).value
    if overrides is not None and key in overrides:
        return tuple(overrides[key])
    return DEFAULT_RECOMMENDATIONS[key]
