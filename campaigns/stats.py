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
    # customers saved and revenue kept at the two ends of the uplift's interval
    saved_low: float | None = None
    saved_high: float | None = None
    revenue_low: float | None = None
    revenue_high: float | None = None
    # either group has fewer than SMALL_SAMPLE known outcomes: the figures can swing a lot
    small_sample: bool = True


def effect(treatment: GroupCounts, control: GroupCounts, *, horizon_months: int) -> Effect:
    """Uplift with its 95% interval, customers saved, revenue kept and offer cost.

    customers saved = uplift x treated customers (every treatment target: intention to treat);
    revenue kept = customers saved x mean monthly charges of the treated x horizon months;
    net value = revenue kept - offer cost. Figures needing the uplift are None until both groups
    have an outcome.
    """
    t_rate, c_rate = treatment.retention_rate, control.retention_rate
    small = min(treatment.known, control.known) < SMALL_SAMPLE
    if t_rate is None or c_rate is None:
        return Effect(t_rate, c_rate, None, None, None, None, None, treatment.offer_cost, None, small_sample=small)
    uplift = t_rate - c_rate
    interval = newcombe_interval(treatment.retained, treatment.known, control.retained, control.known)
    assert interval is not None  # both groups have observations here
    saved = uplift * treatment.targets
    per_saved = (treatment.mean_monthly_charges or 0.0) * horizon_months
    revenue = saved * per_saved
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
        saved_low=interval[0] * treatment.targets,
        saved_high=interval[1] * treatment.targets,
        revenue_low=interval[0] * treatment.targets * per_saved,
        revenue_high=interval[1] * treatment.targets * per_saved,
        small_sample=small,
    )


# --- whom to contact: expected value --------------------------------------------------------------

SMALL_SAMPLE = 30  # known outcomes per group below which a measured effect is flagged as unreliable


def contact_value(
    *, probability: float, save_rate: float, monthly_charges: float, horizon_months: int, offer_cost: float
) -> float:
    """Expected value of contacting one customer: p(churn) x save rate x monthly charges x horizon - offer cost.

    The save rate is the share of would-be churners a contact keeps (the campaign's uplift), so
    p x save rate is the chance that this contact is what keeps the customer.
    """
    return probability * save_rate * monthly_charges * horizon_months - offer_cost


@dataclass(frozen=True)
class Pick:
    """One candidate as the value selection sees it."""

    key: str
    probability: float
    monthly_charges: float
    offer_cost: float
    value: float
    control: bool


def select_by_value(
    picks: list[Pick], *, max_offers: int | None = None, max_money: float | None = None
) -> list[Pick]:
    """The candidates worth contacting, best expected value first, within the budget.

    Only positive expected values are kept. Control customers travel with the selection (they are
    held out, so they use no budget) so that the campaign can still measure its effect. The money
    budget is filled greedily in value order, skipping an offer that no longer fits.
    """
    chosen: list[Pick] = []
    offers, spent = 0, 0.0
    for pick in sorted(picks, key=lambda p: (-p.value, p.key)):
        if pick.value <= 0:
            break
        if pick.control:
            chosen.append(pick)
            continue
        if max_offers is not None and offers >= max_offers:
            continue
        if max_money is not None and spent + pick.offer_cost > max_money + 1e-9:
            continue
        offers += 1
        spent += pick.offer_cost
        chosen.append(pick)
    if max_offers is not None or max_money is not None:
        # Controls are kept only down to the last treated pick's value, so the held-out group
        # looks like the treated one.
        floor = min((p.value for p in chosen if not p.control), default=float("inf"))
        chosen = [p for p in chosen if not p.control or p.value >= floor]
    return chosen


@dataclass(frozen=True)
class Projection:
    """What contacting a selection is expected to achieve, with the save rate it assumed."""

    selected: int
    treatment: int
    control: int
    expected_saves: float
    expected_revenue_kept: float
    offer_cost: float
    expected_net: float
    save_rate: float
    save_rate_low: float | None
    save_rate_high: float | None
    churn_mass: float  # sum of p(churn) over the treated: saves per unit of save rate
    revenue_mass: float  # sum of p x monthly charges x horizon: revenue per unit of save rate

    def _at_ends(self, mass: float) -> tuple[float, float] | None:
        if self.save_rate_low is None or self.save_rate_high is None:
            return None
        return mass * self.save_rate_low, mass * self.save_rate_high

    @property
    def saves_interval(self) -> tuple[float, float] | None:
        return self._at_ends(self.churn_mass)

    @property
    def revenue_interval(self) -> tuple[float, float] | None:
        return self._at_ends(self.revenue_mass)


def project(
    picks: list[Pick],
    *,
    save_rate: float,
    horizon_months: int,
    save_rate_interval: tuple[float, float] | None = None,
) -> Projection:
    """Expected saves, revenue kept, offer cost and net over the treated part of a selection."""
    treated = [p for p in picks if not p.control]
    churn_mass = sum(p.probability for p in treated)
    revenue_mass = sum(p.probability * p.monthly_charges * horizon_months for p in treated)
    cost = sum(p.offer_cost for p in treated)
    revenue = revenue_mass * save_rate
    return Projection(
        selected=len(picks),
        treatment=len(treated),
        control=len(picks) - len(treated),
        expected_saves=churn_mass * save_rate,
        expected_revenue_kept=revenue,
        offer_cost=cost,
        expected_net=revenue - cost,
        save_rate=save_rate,
        save_rate_low=save_rate_interval[0] if save_rate_interval else None,
        save_rate_high=save_rate_interval[1] if save_rate_interval else None,
        churn_mass=churn_mass,
        revenue_mass=revenue_mass,
    )
