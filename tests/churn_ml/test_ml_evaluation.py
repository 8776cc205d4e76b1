"""Metrics on small inputs whose values were computed by hand, cross-checked against sklearn.

ROC AUC, PR AUC, accuracy, F1 and Brier are sklearn.metrics' own; the tests pin what evaluation
adds (None on degenerate input, the inclusive threshold). The calibration figures are written
here and held to sklearn's calibration_curve.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from churn_ml import evaluation as ev

# Four customers: two stayers (0.1, 0.4) and two churners (0.35, 0.8).
P = [0.1, 0.4, 0.35, 0.8]
Y = [False, False, True, True]


def test_roc_auc_hand_computed() -> None:
    # Churner/stayer pairs ranked right: (0.35>0.1), (0.8>0.1), (0.8>0.4); wrong: (0.35<0.4) -> 3/4.
    assert ev.roc_auc(P, Y) == pytest.approx(0.75)


def test_roc_auc_ties_count_half() -> None:
    # Churners 0.5, 0.9; stayers 0.5, 0.2: pairs 0.5 (tie), 1, 1, 1 -> 3.5 / 4.
    assert ev.roc_auc([0.5, 0.5, 0.2, 0.9], [1, 0, 0, 1]) == pytest.approx(0.875)


def test_pr_auc_hand_computed() -> None:
    # Ranked: 0.8 (churn) P=1 R=.5; 0.4 (stay) P=.5 R=.5; 0.35 (churn) P=2/3 R=1; 0.1 P=.5 R=1.
    # AP = 0.5 * 1 + 0 + 0.5 * 2/3 + 0 = 0.8333...
    assert ev.pr_auc(P, Y) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_accuracy_and_f1_at_half() -> None:
    # Predicted churn only for 0.8: correct for 3 of 4; TP=1, FP=0, FN=1 -> F1 = 2/(2+0+1).
    assert ev.accuracy(P, Y) == pytest.approx(0.75)
    assert ev.f1(P, Y) == pytest.approx(2 / 3)
    # The threshold is inclusive: p == 0.5 is a churn call.
    assert ev.accuracy([0.5], [True]) == 1.0


def test_brier_hand_computed() -> None:
    # (0.1^2 + 0.4^2 + 0.65^2 + 0.2^2) / 4
    assert ev.brier(P, Y) == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)


def test_ece_one_per_bin() -> None:
    # Every probability alone in its bin: mean |p - y| = (0.1 + 0.4 + 0.65 + 0.2) / 4.
    assert ev.expected_calibration_error(P, Y) == pytest.approx(1.35 / 4)


def test_ece_shared_bins_and_upper_edge() -> None:
    # Bin [0.1, 0.2): p 0.12, 0.18 (mean 0.15), outcomes 0, 1 (rate 0.5): gap 0.35, weight 1/2.
    # Bin [0.9, 1.0]: 0.95 and 1.0 (1.0 belongs to the last bin), mean 0.975, rate 1: gap 0.025.
    value = ev.expected_calibration_error([0.12, 0.18, 0.95, 1.0], [0, 1, 1, 1])
    assert value == pytest.approx(0.5 * 0.35 + 0.5 * 0.025)


def test_perfect_calibration_has_zero_ece() -> None:
    p = np.repeat([0.25, 0.75], 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0], dtype=bool)
    assert ev.expected_calibration_error(p, y) == pytest.approx(0.0)


def test_calibration_bins_table() -> None:
    table = ev.calibration_bins([0.12, 0.18, 0.95, 1.0], [0, 1, 1, 1])
    assert len(table) == 10
    assert table[1]["count"] == 2
    assert table[1]["mean_probability"] == pytest.approx(0.15)
    assert table[1]["churn_rate"] == pytest.approx(0.5)
    assert table[0]["count"] == 0
    assert table[0]["mean_probability"] is None
    assert table[9]["count"] == 2


def test_agrees_with_sklearn_on_random_data_with_ties() -> None:
    rng = np.random.default_rng(3)
    y = rng.random(2000) < 0.3
    # Rounded to two decimals so that many scores tie.
    p = np.round(np.clip(0.3 * y + rng.random(2000) * 0.7, 0, 1), 2)
    report = ev.classification_metrics(p, y)
    assert report.roc_auc == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert report.pr_auc == pytest.approx(skm.average_precision_score(y, p), abs=1e-12)
    assert report.brier == pytest.approx(skm.brier_score_loss(y, p), abs=1e-12)
    assert report.accuracy == pytest.approx(skm.accuracy_score(y, p >= 0.5), abs=1e-12)
    assert report.f1 == pytest.approx(skm.f1_score(y, p >= 0.5), abs=1e-12)


def test_hand_written_ece_agrees_with_sklearns_calibration_curve() -> None:
    # The ECE is written here (sklearn has none); held to the bin means calibration_curve gives,
    # weighted by the bins' counts. Continuous scores, so that none falls on a bin edge, where
    # calibration_curve puts an edge value in the lower bin and the ECE in the upper one.
    rng = np.random.default_rng(5)
    p = rng.beta(2, 5, 3000)
    y = rng.random(3000) < np.clip(p * 1.3, 0, 1)
    churn_rate, mean_probability = calibration_curve(y, p, n_bins=10, strategy="uniform")
    counts = np.histogram(p, bins=np.linspace(0, 1, 11))[0]
    weights = counts[counts > 0] / len(p)
    assert ev.expected_calibration_error(p, y) == pytest.approx(
        float(np.sum(weights * np.abs(mean_probability - churn_rate))), abs=1e-12
    )
    table = [b for b in ev.calibration_bins(p, y) if b["count"]]
    assert [b["churn_rate"] for b in table] == pytest.approx(list(churn_rate), abs=1e-12)
    assert [b["mean_probability"] for b in table] == pytest.approx(list(mean_probability), abs=1e-12)


def test_undefined_figures_are_none() -> None:
    only_stayers = ev.classification_metrics([0.2, 0.7], [False, False])
    assert only_stayers.roc_auc is None
    assert only_stayers.pr_auc is None
    assert only_stayers.accuracy == 0.5
    assert ev.f1([0.1], [False]) == 0.0  # nothing predicted, nothing actual


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError):
        ev.roc_auc([0.1, 1.2], [0, 1])
    with pytest.raises(ValueError):
        ev.brier([0.1, float("nan")], [0, 1])
    with pytest.raises(ValueError):
        ev.accuracy([0.1, 0.2], [0])


def test_live_metrics_skip_unknown_outcomes() -> None:
    pairs = [(0.1, False), (0.4, False), (0.35, True), (0.8, True), (0.9, None)]
    report = ev.live_metrics(pairs)
    assert report.n == 4
    assert report.roc_auc == pytest.approx(0.75)
    assert report.brier == pytest.approx(0.158125)
    columns = ev.live_metrics(probabilities=[0.1, 0.4, 0.35, 0.8, None], outcomes=[0, 0, 1, 1, 1])
    assert columns.as_dict() == pytest.approx({**report.as_dict()})


def test_live_metrics_with_no_outcomes_yet() -> None:
    report = ev.live_metrics([])
    assert report.n == 0
    assert report.as_dict() == {
        "n": 0,
        "positive_rate": None,
        "roc_auc": None,
        "pr_auc": None,
        "accuracy": None,
        "f1": None,
        "brier": None,
        "ece": None,
        "threshold": 0.5,
    }
