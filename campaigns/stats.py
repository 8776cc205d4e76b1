"""Campaign arithmetic in plain Python: control assignment and the effect of a campaign.

No Django here: the web layer turns rows into counts, this module turns counts into figures, and
the tests check the figures against numbers computed by hand.

Interval for the uplift: Newcombe's hybrid score interval for a difference of two independent
proportions (Newcombe 1998, "Interval estimation for the difference between independent
proportions", method 10), built from the two groups' Wilson score intervals. It is preferred to
the Wald interval because control groups are small (10% of a campaign) and retention rates sit
close to 1, where Wald's interval is too narrow and can leave [-1, 1].
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

Z_95 = 1.959963984540054  # two-sided 95% standard normal quantile


def control_draw(campaign_id: int, customer_id: str) -> float:
    """A uniform number in [0, 1) fixed by campaign and customer.

    Hashing rather than a random generator makes the split reproducible: enrolling again, or
    re-running an enrolment after a failure, puts every customer back into the same group.
    """
    digest = hashlib.sha256(f"{campaign_id}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_control(campaign_id: int, customer_id: str, control_share: float) -> bool:
    return control_draw(campaign_id, customer_id) < control_share


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion; (0, 1) when there is no observation."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(
    successes_a: int, n_a: int, successes_b: int, n_b: int, z: float = Z_95
) -> tuple[float, float] | None:
    """Newcombe's hybrid score interval for p_a - p_b; None when a group has no observation."""
    if n_a <= 0 or n_b <= 0:
        return None
    p_a, p_b = successes_a / n_a, successes_b / n_b
    low_a, high_a = wilson_interval(successes_a, n_a, z)
    low_b, high_b = wilson_interval(successes_b, n_b, z)
    difference = p_a - p_b
    below = math.sqrt((p_a - low_a) ** 2 + (high_b - p_b) ** 2)
    above = math.sqrt((high_a - p_a) ** 2 + (p_b - low_b) ** 2)
    return difference - below, difference + above


@dataclass(frozen=True)
class GroupCounts:
    """One group's (or one assignee's) targets: how many, how many with a known outcome, kept."""

    targets: int = 0
    known: int = 0
    retained: int = 0
    monthly_charges_sum: float = 0.0
    offer_cost: float = 0.0

    @property
    def retention_rate(self) -> float | None:
        return self.retained / self.known if self.known else None

    @property
    def mean_monthly_charges(self) -> float | None:
        return self.monthly_charges_sum / self.targets if self.targets else None


@dataclass(frozen=True)
class Effect:
    """The measured effect of treating a group against the campaign's control group."""

    treatment_rate: float | None
    control_rate: float | None
    uplift: float | None
    uplift_low: float | None
    uplift_high: float | None
    customers_saved: float | None
    revenue_kept: float | None
    offer_cost: float
    net_value: float | None


def effect(treatment: GroupCounts, control: GroupCounts, *, horizon_months: int) -> Effect:
    """Uplift with its 95% interval, customers saved, revenue kept and offer cost.

    customers saved = uplift x treated customers (every treatment target: intention to treat);
    revenue kept = customers saved x mean monthly charges of the treated x horizon months;
    net value = revenue kept - offer cost. Figures needing the uplift are None until both groups
    have an outcome.
    """
    t_rate, c_rate = treatment.retention_rate, control.retention_rate
    if t_rate is None or c_rate is None:
        return Effect(t_rate, c_rate, None, None, None, None, None, treatment.offer_cost, None)
    uplift = t_rate - c_rate
    interval = newcombe_interval(treatment.retained, treatment.known, control.retained, control.known)
    assert interval is not None  # both groups have observations here
    saved = uplift * treatment.targets
    revenue = saved * (treatment.mean_monthly_charges or 0.0) * horizon_months
    return Effect(
        treatment_rate=t_rate,
        control_rate=c_rate,
        uplift=uplift,
        uplift_low=interval[0],
        uplift_high=interval[1],
        customers_saved=saved,
        revenue_kept=revenue,
        offer_cost=treatment.offer_cost,
        net_value=revenue - treatment.offer_cost,
    )
