"""The campaign arithmetic against published and hand-computed figures (no database)."""

from __future__ import annotations

import math

import pytest

from campaigns.stats import GroupCounts, control_draw, effect, in_control, newcombe_interval, wilson_interval


def test_wilson_interval_matches_newcombe_1998_single_proportion_example():
    # Newcombe (1998), Statistics in Medicine 17:857, example 81/263: 0.2553 to 0.3662.
    low, high = wilson_interval(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)


def test_wilson_interval_by_hand_for_8_of_10():
    # p = 0.8, n = 10, z^2 = 3.8415: centre = (0.8 + 3.8415/20) / 1.38415 = 0.71674,
    # half = 1.96 * sqrt(0.016 + 3.8415/400) / 1.38415 = 1.96 * 0.16001 / 1.38415 = 0.22658 -> 0.4902 .. 0.9433
    z = 1.959963984540054
    centre = (0.8 + z * z / 20) / (1 + z * z / 10)
    half = z * math.sqrt(0.8 * 0.2 / 10 + z * z / 400) / (1 + z * z / 10)
    assert wilson_interval(8, 10) == pytest.approx((centre - half, centre + half))
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)


@pytest.mark.parametrize(
    ("a", "n_a", "b", "n_b", "low", "high"),
    [
        (56, 70, 48, 80, 0.0524, 0.3339),  # Newcombe (1998) difference paper, example (a), method 10
        (9, 10, 3, 10, 0.1705, 0.8090),  # example (e)
    ],
)
def test_newcombe_interval_matches_the_published_examples(a, n_a, b, n_b, low, high):
    got = newcombe_interval(a, n_a, b, n_b)
    assert got is not None
    assert (round(got[0], 4), round(got[1], 4)) == (low, high)


def test_newcombe_interval_needs_both_groups():
    assert newcombe_interval(5, 10, 0, 0) is None
    assert newcombe_interval(0, 0, 5, 10) is None


def test_effect_on_a_hand_computed_campaign():
    # Treatment: 80 targets, 70 outcomes known, 56 retained (80%); control: 80 known, 48 retained (60%).
    # Every bill is 50/month; 10 accepted offers of 20% for 3 months cost 10 * 50 * 0.2 * 3 = 300.
    treatment = GroupCounts(targets=80, known=70, retained=56, monthly_charges_sum=80 * 50.0, offer_cost=300.0)
    control = GroupCounts(targets=80, known=80, retained=48, monthly_charges_sum=80 * 50.0)
    result = effect(treatment, control, horizon_months=12)
    assert result.treatment_rate == pytest.approx(0.8)
    assert result.control_rate == pytest.approx(0.6)
    assert result.uplift == pytest.approx(0.2)
    assert (round(result.uplift_low, 4), round(result.uplift_high, 4)) == (0.0524, 0.3339)
    assert result.customers_saved == pytest.approx(16.0)  # 0.2 x 80 treated
    assert result.revenue_kept == pytest.approx(9600.0)  # 16 x 50 x 12 months
    assert result.offer_cost == pytest.approx(300.0)
    assert result.net_value == pytest.approx(9300.0)


def test_effect_without_control_outcomes_reports_rates_but_no_uplift():
    result = effect(GroupCounts(10, 10, 9, 500.0), GroupCounts(2, 0, 0, 100.0), horizon_months=12)
    assert result.treatment_rate == pytest.approx(0.9)
    assert result.control_rate is None
    assert result.uplift is None
    assert result.customers_saved is None


def test_control_draw_is_stable_and_uniform():
    assert control_draw(7, "C-1") == control_draw(7, "C-1")
    assert control_draw(7, "C-1") != control_draw(8, "C-1")
    draws = [control_draw(1, f"C-{i}") for i in range(20_000)]
    assert all(0 <= d < 1 for d in draws)
    share = sum(d < 0.1 for d in draws) / len(draws)
    assert share == pytest.approx(0.1, abs=0.01)
    assert in_control(1, "C-1", 0.0) is False
    assert in_control(1, "C-1", 1.0) is True
