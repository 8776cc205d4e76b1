"""How good are churn probabilities, and is one model better than another: intervals, paired
tests, label-free estimates and the churn-native report (lift, gains, calibration, cuts).

Plain numpy and the standard library (no Django, no SciPy). The pieces and their sources:

* DeLong's method (DeLong, DeLong & Clarke-Pearson 1988, in the fast form of Sun & Xu 2014):
  the variance of one ROC AUC and the covariance of two AUCs measured on the same rows, from
  the structural components of the Mann-Whitney statistic. It gives the 95% interval of an AUC
  (:func:`roc_auc_ci`), the paired test of two models on the same rows
  (:func:`paired_auc_test`) and, with independent samples, the A/B test of two arms
  (:func:`unpaired_auc_test`). DeLong rather than a bootstrap because it is exact for the
  statistic, deterministic (the same figure in the API, the admin and the audit log) and costs
  one sort instead of a thousand resamples.
* :func:`needed_per_arm`: the sample size per arm for a two-sided test at ``alpha`` with
  ``power`` to detect an AUC difference, from the Hanley & McNeil (1982) variance of an AUC.
* CBPE, confidence-based performance estimation (as NannyML describes it): with calibrated
  probabilities, each row is a churner with probability p, so the expected confusion matrix at
  any threshold is a sum of p and 1 - p. :func:`cbpe` gives the expected accuracy and the AUC of
  the expected ROC curve. It is only as good as the calibration: report the ECE beside it.
* :func:`churn_report`: top-share lift and capture, the cumulative gains curve, the reliability
  curve and the precision/recall/share flagged at each risk-level cut.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, Final

import numpy as np

from churn_ml.evaluation import _arrays, calibration_bins, roc_auc

LIFT_SHARES: Final = (0.05, 0.1, 0.2)
GAINS_POINTS: Final = 20

# The standard normal of the z tests: the standard library's, not scipy.stats (~60 MB per process
# for the three calls this module makes).
_NORMAL = NormalDist()


# --- DeLong -----------------------------------------------------------------------------------


def _midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties averaged."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    _, first, counts = np.unique(sorted_x, return_index=True, return_counts=True)
    ranks_sorted = np.repeat(first + (counts + 1) / 2.0, counts)
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = ranks_sorted
    return ranks


def _delong(scores: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs (k,) and their covariance matrix (k, k) for k score rows over the same labelled rows."""
    pos, neg = scores[:, y], scores[:, ~y]
    m, n = pos.shape[1], neg.shape[1]
    aucs = np.empty(len(scores))
    v01 = np.empty((len(scores), m))
    v10 = np.empty((len(scores), n))
    for r in range(len(scores)):
        tx, ty, tz = _midranks(pos[r]), _midranks(neg[r]), _midranks(np.r_[pos[r], neg[r]])
        aucs[r] = (tz[:m].sum() - m * (m + 1) / 2.0) / (m * n)
        v01[r] = (tz[:m] - tx) / n
        v10[r] = 1.0 - (tz[m:] - ty) / m
    s01 = np.atleast_2d(np.cov(v01)) if m > 1 else np.zeros((len(scores), len(scores)))
    s10 = np.atleast_2d(np.cov(v10)) if n > 1 else np.zeros((len(scores), len(scores)))
    return aucs, s01 / m + s10 / n


@dataclass(frozen=True)
class AucInterval:
    roc_auc: float
    variance: float
    ci95: tuple[float, float]


def roc_auc_ci(probabilities: Any, outcomes: Any) -> AucInterval | None:
    """ROC AUC with DeLong's variance and 95% interval (clipped to [0, 1]); None with one class."""
    p, y = _arrays(probabilities, outcomes)
    if y.all() or not y.any():
        return None
    aucs, cov = _delong(p[None, :], y)
    auc, var = float(aucs[0]), float(cov[0, 0])
    half = 1.959963984540054 * math.sqrt(max(var, 0.0))
    return AucInterval(roc_auc=auc, variance=var, ci95=(max(0.0, auc - half), min(1.0, auc + half)))


@dataclass(frozen=True)
class Comparison:
    """Model B minus model A on ROC AUC: the difference, its 95% interval and p-values.

    ``p_value`` is two-sided; ``p_worse`` is one-sided for "B is worse than A" (small when B
    is significantly worse).
    """

    metric: str
    n: int
    positives: int
    auc_a: float
    auc_b: float
    difference: float
    ci95: tuple[float, float]
    p_value: float
    p_worse: float
    method: str

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ci95"] = list(self.ci95)
        return out


def _compare(auc_a: float, auc_b: float, var: float, *, n: int, positives: int, method: str) -> Comparison:
    diff = auc_b - auc_a
    se = math.sqrt(max(var, 0.0))
    if se == 0.0:
        p_two, p_worse = (1.0, 1.0) if diff == 0 else (0.0, 0.0 if diff < 0 else 1.0)
    else:
        z = diff / se
        p_two = 2.0 * _NORMAL.cdf(-abs(z))  # the upper tail, as the lower one of -|z| (no cancellation)
        p_worse = _NORMAL.cdf(z)
    half = 1.959963984540054 * se
    return Comparison(
        metric="roc_auc",
        n=n,
        positives=positives,
        auc_a=auc_a,
        auc_b=auc_b,
        difference=diff,
        ci95=(diff - half, diff + half),
        p_value=p_two,
        p_worse=p_worse,
        method=method,
    )


def paired_auc_test(probabilities_a: Any, probabilities_b: Any, outcomes: Any) -> Comparison | None:
    """DeLong's paired test of two models' ROC AUC on the same rows; None with one class."""
    pa, y = _arrays(probabilities_a, outcomes)
    pb, _ = _arrays(probabilities_b, outcomes)
    if y.all() or not y.any():
        return None
    aucs, cov = _delong(np.vstack([pa, pb]), y)
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    return _compare(float(aucs[0]), float(aucs[1]), var, n=len(y), positives=int(y.sum()), method="delong_paired")


def unpaired_auc_test(a: AucInterval, b: AucInterval, *, n: int, positives: int) -> Comparison:
    """Two ROC AUCs on independent samples (the arms of an A/B test): B minus A."""
    return _compare(a.roc_auc, b.roc_auc, a.variance + b.variance, n=n, positives=positives, method="delong_unpaired")


def hanley_mcneil_variance(auc: float, positives: float, negatives: float) -> float:
    """Variance of an ROC AUC from its value and class sizes (Hanley & McNeil 1982)."""
    q1 = auc / (2.0 - auc)
    q2 = 2.0 * auc * auc / (1.0 + auc)
    return (
        auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)
    ) / (positives * negatives)


def needed_per_arm(
    *, auc: float, positive_rate: float, difference: float, alpha: float = 0.05, power: float = 0.8
) -> int | None:
    """Outcomes needed in each arm to detect ``difference`` in ROC AUC (two-sided ``alpha``, ``power``).

    None when the inputs make no sense (no churners or no stayers, a zero difference).
    """
    if not 0.0 < positive_rate < 1.0 or difference <= 0 or not 0.5 <= auc < 1.0:
        return None
    z = _NORMAL.inv_cdf(1 - alpha / 2) + _NORMAL.inv_cdf(power)

    def enough(n: int) -> bool:
        v = hanley_mcneil_variance(auc, n * positive_rate, n * (1 - positive_rate))
        return z * math.sqrt(2.0 * v) <= difference

    low, high = 2, 2
    while not enough(high):
        high *= 2
        if high > 10**9:
            return None
    while low < high:
        mid = (low + high) // 2
        if enough(mid):
            high = mid
        else:
            low = mid + 1
    return int(high)


# --- CBPE -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    n: int
    roc_auc: float | None
    accuracy: float | None
    expected_positive_rate: float | None
    method: str = "cbpe"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cbpe(probabilities: Any, threshold: float = 0.5) -> Estimate:
    """Label-free estimate of ROC AUC and accuracy from calibrated probabilities.

    Expected true/false positives at each distinct score t are sums of p and 1 - p over the rows
    scored >= t; the expected ROC curve joins those points and its area is the estimate.
    """
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    n = len(p)
    if n == 0:
        return Estimate(n=0, roc_auc=None, accuracy=None, expected_positive_rate=None)
    accuracy = float(np.where(p >= threshold, p, 1.0 - p).mean())
    expected_pos = float(p.sum())
    expected_neg = float(n - expected_pos)
    if expected_pos <= 0 or expected_neg <= 0:
        return Estimate(n=n, roc_auc=None, accuracy=accuracy, expected_positive_rate=expected_pos / n)
    values, inverse = np.unique(-p, return_inverse=True)  # descending scores, ties grouped
    tp = np.bincount(inverse, weights=p, minlength=len(values))
    fp = np.bincount(inverse, weights=1.0 - p, minlength=len(values))
    tpr = np.r_[0.0, np.cumsum(tp) / expected_pos]
    fpr = np.r_[0.0, np.cumsum(fp) / expected_neg]
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))
    return Estimate(n=n, roc_auc=auc, accuracy=accuracy, expected_positive_rate=expected_pos / n)


# --- the churn report -------------------------------------------------------------------------


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def lift_table(p: np.ndarray, y: np.ndarray, shares: Sequence[float] = LIFT_SHARES) -> list[dict[str, Any]]:
    """For the top share of customers by probability: lift (churn rate / overall) and share of churners caught."""
    order = np.argsort(-p, kind="mergesort")
    ys = y[order]
    total_pos = int(y.sum())
    base = y.mean() if len(y) else 0.0
    out = []
    for share in shares:
        k = max(1, math.ceil(share * len(y))) if len(y) else 0
        caught = int(ys[:k].sum()) if k else 0
        rate = caught / k if k else None
        out.append(
            {
                "top_share": share,
                "n": k,
                "lift": _r(rate / base) if rate is not None and base > 0 else None,
                "captured": _r(caught / total_pos) if total_pos else None,
            }
        )
    return out


def gains_curve(p: np.ndarray, y: np.ndarray, points: int = GAINS_POINTS) -> list[dict[str, float | None]]:
    """Cumulative gains: share of churners caught in the top x of customers, x = 0, 1/points, ..., 1."""
    order = np.argsort(-p, kind="mergesort")
    cum = np.r_[0, np.cumsum(y[order])]
    total_pos = cum[-1]
    out = []
    for i in range(points + 1):
        share = i / points
        k = round(share * len(y))
        out.append({"share": round(share, 4), "captured": _r(cum[k] / total_pos) if total_pos else None})
    return out


def threshold_table(p: np.ndarray, y: np.ndarray, cuts: Sequence[tuple[str, float]]) -> list[dict[str, Any]]:
    """Precision, recall and share flagged when every customer at or above a risk-level cut is flagged."""
    total_pos = int(y.sum())
    out = []
    for level, cut in cuts:
        flagged = p >= cut
        k = int(flagged.sum())
        tp = int((flagged & y).sum())
        out.append(
            {
                "risk_level": level,
                "threshold": cut,
                "flagged": k,
                "share_flagged": _r(k / len(y)) if len(y) else None,
                "precision": _r(tp / k) if k else None,
                "recall": _r(tp / total_pos) if total_pos else None,
            }
        )
    return out


def churn_report(probabilities: Any, outcomes: Any, *, cuts: Sequence[tuple[str, float]]) -> dict[str, Any]:
    """Lift, gains, calibration and threshold table of probabilities against outcomes."""
    p, y = _arrays(probabilities, outcomes)
    calibration = [
        {
            "lower": b["lower"],
            "upper": b["upper"],
            "n": b["count"],
            "mean_predicted": _r(b["mean_probability"]),
            "observed": _r(b["churn_rate"]),
        }
        for b in calibration_bins(p, y)
    ]
    auc = roc_auc(p, y)
    return {
        "n": len(p),
        "positives": int(y.sum()),
        "roc_auc": _r(auc),
        "lift": lift_table(p, y),
        "gains": gains_curve(p, y),
        "calibration": calibration,
        "threshold_table": threshold_table(p, y, cuts),
    }
