"""Quality metrics of churn probabilities against observed outcomes.

ROC AUC, PR AUC, accuracy, F1 and the Brier score are sklearn.metrics' own: every process that
computes them (training, the Celery workers, the web workers reading live performance) has
scikit-learn loaded already, for training and for reading model artifacts. What this module adds
is defined behaviour on the degenerate inputs live data produces (no outcomes yet, only
churners, only stayers): an undefined figure is None, never a warning or an exception. The
calibration figures are written here: sklearn has no ECE, and ``calibration_curve`` drops empty
bins, which the reliability table must list.

Definitions:

* ROC AUC: probability that a random churner scores above a random stayer, ties counting half
  (``roc_auc_score``); undefined (None) unless both classes are present.
* PR AUC: average precision (``average_precision_score``), sum over distinct score thresholds
  of (recall step) x precision; undefined without any churner.
* accuracy and F1 at a threshold (default 0.5, a churn prediction is ``p >= threshold``); F1 is
  0 when there are neither predicted nor actual churners.
* Brier score: mean squared difference between probability and outcome (0/1).
* ECE (expected calibration error): 10 equal-width probability bins [0, 0.1), ..., [0.9, 1.0]
  (1.0 goes to the last bin); the bin-size-weighted mean of |mean probability - churn rate|.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np

from churn_ml.deferred import deferred

# scikit-learn's metrics, imported on the first report (see churn_ml.deferred): a web worker that
# only scores never loads scikit-learn.
metrics = deferred("sklearn.metrics")

DEFAULT_THRESHOLD: Final = 0.5
DEFAULT_ECE_BINS: Final = 10


def _arrays(probabilities: Any, outcomes: Any) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    y = np.asarray(outcomes).ravel().astype(bool)
    if p.shape != y.shape:
        raise ValueError(f"{len(p)} probabilities but {len(y)} outcomes")
    if len(p) and (not np.isfinite(p).all() or p.min() < 0.0 or p.max() > 1.0):
        raise ValueError("probabilities must be finite and within [0, 1]")
    return p, y


def roc_auc(probabilities: Any, outcomes: Any) -> float | None:
    """Area under the ROC curve; None when only one class is present."""
    p, y = _arrays(probabilities, outcomes)
    if y.all() or not y.any():
        return None
    return float(metrics.roc_auc_score(y, p))


def pr_auc(probabilities: Any, outcomes: Any) -> float | None:
    """Average precision (area under the step-wise precision-recall curve); None without churners."""
    p, y = _arrays(probabilities, outcomes)
    if not y.any():
        return None
    return float(metrics.average_precision_score(y, p))


def accuracy(probabilities: Any, outcomes: Any, threshold: float = DEFAULT_THRESHOLD) -> float | None:
    """Share of correct churn/stay calls at the threshold; None for no rows."""
    p, y = _arrays(probabilities, outcomes)
    if len(p) == 0:
        return None
    return float(metrics.accuracy_score(y, p >= threshold))


def f1(probabilities: Any, outcomes: Any, threshold: float = DEFAULT_THRESHOLD) -> float | None:
    """F1 of the churn class at the threshold; 0 when nothing is predicted or actual; None for no rows."""
    p, y = _arrays(probabilities, outcomes)
    if len(p) == 0:
        return None
    return float(metrics.f1_score(y, p >= threshold, zero_division=0.0))


def brier(probabilities: Any, outcomes: Any) -> float | None:
    """Mean squared error of the probabilities; None for no rows."""
    p, y = _arrays(probabilities, outcomes)
    if len(p) == 0:
        return None
    return float(metrics.brier_score_loss(y, p, pos_label=True))


def calibration_bins(probabilities: Any, outcomes: Any, bins: int = DEFAULT_ECE_BINS) -> list[dict[str, float]]:
    """The reliability table: per equal-width bin, its bounds, count, mean probability and churn rate.

    Empty bins are listed with count 0 and null means, so a chart has every bin.
    """
    p, y = _arrays(probabilities, outcomes)
    index = np.minimum((p * bins).astype(np.int64), bins - 1)
    counts = np.bincount(index, minlength=bins)
    sum_p = np.bincount(index, weights=p, minlength=bins)
    sum_y = np.bincount(index, weights=y.astype(np.float64), minlength=bins)
    table = []
    for b in range(bins):
        n = int(counts[b])
        table.append(
            {
                "lower": b / bins,
                "upper": (b + 1) / bins,
                "count": n,
                "mean_probability": float(sum_p[b] / n) if n else None,
                "churn_rate": float(sum_y[b] / n) if n else None,
            }
        )
    return table


def expected_calibration_error(probabilities: Any, outcomes: Any, bins: int = DEFAULT_ECE_BINS) -> float | None:
    """ECE over equal-width bins; None for no rows."""
    p, y = _arrays(probabilities, outcomes)
    if len(p) == 0:
        return None
    index = np.minimum((p * bins).astype(np.int64), bins - 1)
    counts = np.bincount(index, minlength=bins)
    sum_p = np.bincount(index, weights=p, minlength=bins)
    sum_y = np.bincount(index, weights=y.astype(np.float64), minlength=bins)
    gap = np.abs(sum_p - sum_y)
    # sum over bins of (n_b / n) * |sum_p_b - sum_y_b| / n_b = sum |sum_p_b - sum_y_b| / n
    return float(gap[counts > 0].sum() / len(p))


@dataclass(frozen=True)
class MetricReport:
    """Every figure for one set of (probability, outcome) pairs; None where undefined."""

    n: int
    positive_rate: float | None
    roc_auc: float | None
    pr_auc: float | None
    accuracy: float | None
    f1: float | None
    brier: float | None
    ece: float | None
    threshold: float = DEFAULT_THRESHOLD

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-able: floats, ints and None)."""
        return asdict(self)


def classification_metrics(
    probabilities: Any, outcomes: Any, *, threshold: float = DEFAULT_THRESHOLD, bins: int = DEFAULT_ECE_BINS
) -> MetricReport:
    """All metrics at once. Raises ValueError on mismatched lengths or probabilities outside [0, 1]."""
    p, y = _arrays(probabilities, outcomes)
    return MetricReport(
        n=len(p),
        positive_rate=float(y.mean()) if len(y) else None,
        roc_auc=roc_auc(p, y),
        pr_auc=pr_auc(p, y),
        accuracy=accuracy(p, y, threshold),
        f1=f1(p, y, threshold),
        brier=brier(p, y),
        ece=expected_calibration_error(p, y, bins),
        threshold=threshold,
    )


def live_metrics(
    pairs: Sequence[tuple[float, bool]] | None = None,
    *,
    probabilities: Any = None,
    outcomes: Any = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> MetricReport:
    """Metrics of stored predictions against recorded outcomes, for monitoring a live model.

    Give either ``pairs`` (an iterable of (probability, churned) as a query returns them) or the
    two columns. Rows whose outcome or probability is None (not observed yet) are skipped; no
    rows at all give a report with n=0 and every figure None, rather than an error, because "no
    outcomes yet" is the normal state of a new model.
    """
    if pairs is not None:
        rows = [(p, o) for p, o in pairs if p is not None and o is not None]
        p = np.array([float(r[0]) for r in rows], dtype=np.float64)
        y = np.array([bool(r[1]) for r in rows], dtype=bool)
    else:
        if probabilities is None or outcomes is None:
            raise ValueError("give pairs, or both probabilities and outcomes")
        p_raw = np.asarray(probabilities, dtype=object).ravel()
        y_raw = np.asarray(outcomes, dtype=object).ravel()
        if p_raw.shape != y_raw.shape:
            raise ValueError(f"{len(p_raw)} probabilities but {len(y_raw)} outcomes")
        known = np.array([a is not None and b is not None for a, b in zip(p_raw, y_raw, strict=True)], dtype=bool)
        p = p_raw[known].astype(np.float64) if known.any() else np.zeros(0)
        y = y_raw[known].astype(bool) if known.any() else np.zeros(0, dtype=bool)
    return classification_metrics(p, y, threshold=threshold)
