"""Metrics on small inputs whose values were computed by hand, cross-checked against sklearn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

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
    assert ev.roc_auc(p, y) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert ev.pr_auc(p, y) == pytest.approx(skm.average_precision_score(y, p), abs=1e-12)
    assert ev.brier(p, y) == pytest.approx(skm.brier_score_loss(y, p), abs=1e-12)
    assert ev.accuracy(p, y) == pytest.approx(skm.accuracy_score(y, p >= 0.5), abs=1e-12)
    assert ev.f1(p, y) == pytest.approx(skm.f1_score(y, p >= 0.5), abs=1e-12)


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
