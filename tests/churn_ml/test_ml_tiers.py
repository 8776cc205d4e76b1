"""Risk levels at and around the contract's thresholds, scalar and vectorised."""

from __future__ import annotations

import numpy as np
import pytest

from churn_ml.tiers import (
    DEFAULT_RECOMMENDATIONS,
    RiskLevel,
    default_recommendations,
    recommendations_for,
    risk_level,
    risk_levels,
)

BOUNDARIES = [
    (0.0, "low"),
    (0.2999, "low"),
    (0.30, "medium"),
    (0.5999, "medium"),
    (0.60, "high"),
    (0.7999, "high"),
    (0.80, "critical"),
    (1.0, "critical"),
]


@pytest.mark.parametrize(("p", "level"), BOUNDARIES)
def test_scalar_boundaries(p: float, level: str) -> None:
    assert risk_level(p) == RiskLevel(level)
    assert risk_level(p).value == level


def test_vectorised_matches_scalar() -> None:
    ps = np.array([p for p, _ in BOUNDARIES])
    assert risk_levels(ps).tolist() == [level for _, level in BOUNDARIES]
    grid = np.linspace(0, 1, 10_001)
    assert risk_levels(grid).tolist() == [risk_level(p).value for p in grid]


def test_just_below_a_threshold() -> None:
    below = np.nextafter(0.30, 0.0)
    assert risk_level(below) is RiskLevel.LOW
    assert risk_levels([below]).tolist() == ["low"]


@pytest.mark.parametrize("bad", [-0.01, 1.01, float("nan")])
def test_out_of_range_is_an_error(bad: float) -> None:
    with pytest.raises(ValueError):
        risk_level(bad)
    with pytest.raises(ValueError):
        risk_levels([0.5, bad])


def test_default_recommendations_follow_the_contract() -> None:
    assert set(DEFAULT_RECOMMENDATIONS) == {"low", "medium", "high", "critical"}
    assert "regular engagement" in DEFAULT_RECOMMENDATIONS["low"][0]
    medium = " ".join(DEFAULT_RECOMMENDATIONS["medium"]).lower()
    assert "touchpoints" in medium
    assert "satisfaction survey" in medium
    assert "15% discount" in DEFAULT_RECOMMENDATIONS["high"][0]
    assert "personal call" in DEFAULT_RECOMMENDATIONS["critical"][0]
    assert "customer success" in DEFAULT_RECOMMENDATIONS["critical"][0]
    assert "20% discount" in default_recommendations(20)["high"][0]


def test_operator_overrides_win() -> None:
    overrides = {"high": ["Call within 48 hours."]}
    assert recommendations_for("high", overrides) == ("Call within 48 hours.",)
    assert recommendations_for(RiskLevel.LOW, overrides) == DEFAULT_RECOMMENDATIONS["low"]
    with pytest.raises(ValueError):
        recommendations_for("severe")
