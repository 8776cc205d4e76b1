"""Intervals, paired tests, CBPE and the churn report, held to sklearn/scipy figures (issue 12)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from churn_ml import performance as perf
from churn_ml.training import backtest


def _synthetic(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 5, n)
    y = rng.random(n) < p  # calibrated by construction
    return p, y


def test_delong_auc_matches_sklearn_and_its_variance_matches_the_bootstrap() -> None:
    p, y = _synthetic()
    interval = perf.roc_auc_ci(p, y)
    assert interval.roc_auc == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    rng = np.random.default_rng(1)
    boot = [skm.roc_auc_score(y[i], p[i]) for i in (rng.integers(0, len(p), len(p)) for _ in range(400))]
    assert np.sqrt(interval.variance) == pytest.approx(np.std(boot), rel=0.15)
    lo, hi = interval.ci95
    assert lo < interval.roc_auc < hi


def test_delong_equals_the_mann_whitney_statistic_with_ties() -> None:
    p = np.array([0.1, 0.4, 0.4, 0.8, 0.4, 0.2, 0.9, 0.1])
    y = np.array([0, 0, 1, 1, 1, 0, 1, 0], dtype=bool)
    u = stats.mannwhitneyu(p[y], p[~y]).statistic
    assert perf.roc_auc_ci(p, y).roc_auc == pytest.approx(u / (y.sum() * (~y).sum()))


def test_paired_test_finds_a_real_difference_and_not_a_null_one() -> None:
    p, y = _synthetic(3000)
    rng = np.random.default_rng(2)
    worse = np.clip(p + rng.normal(0, 0.2, len(p)), 0, 1)
    result = perf.paired_auc_test(p, worse, y)
    assert result.difference == pytest.approx(skm.roc_auc_score(y, worse) - skm.roc_auc_score(y, p))
    assert result.p_worse < 0.001
    assert result.ci95[1] < 0
    same = perf.paired_auc_test(p, p, y)
    assert same.difference == 0
    assert same.p_value == 1.0
    # Null: two equally good noisy copies, tested many times: about 5% significant at 0.05.
    hits = 0
    for seed in range(200):
        r = np.random.default_rng(100 + seed)
        a, b = p + r.normal(0, 0.1, len(p)), p + r.normal(0, 0.1, len(p))
        hits += perf.paired_auc_test(np.clip(a, 0, 1), np.clip(b, 0, 1), y).p_value < 0.05
    assert hits / 200 < 0.1


def test_one_class_has_no_interval() -> None:
    assert perf.roc_auc_ci([0.1, 0.2], [True, True]) is None
    assert perf.paired_auc_test([0.1, 0.2], [0.2, 0.3], [False, False]) is None


def test_needed_n_shrinks_with_a_larger_difference_and_matches_its_definition() -> None:
    small = perf.needed_per_arm(auc=0.84, positive_rate=0.26, difference=0.02)
    large = perf.needed_per_arm(auc=0.84, positive_rate=0.26, difference=0.05)
    assert large < small
    v = perf.hanley_mcneil_variance(0.84, small * 0.26, small * 0.74)
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert z * np.sqrt(2 * v) <= 0.02
    assert perf.needed_per_arm(auc=0.84, positive_rate=0.0, difference=0.02) is None


def test_cbpe_on_calibrated_probabilities_estimates_auc_and_accuracy() -> None:
    p, y = _synthetic(20000)
    estimate = perf.cbpe(p)
    assert estimate.roc_auc == pytest.approx(skm.roc_auc_score(y, p), abs=0.01)
    assert estimate.accuracy == pytest.approx(skm.accuracy_score(y, p >= 0.5), abs=0.01)
    assert perf.cbpe([]).roc_auc is None


def test_cbpe_on_the_bundled_held_out_rows_is_within_003_of_the_realized_auc(model, telco) -> None:
    columns, labels = model.holdout
    p = model.scorer.predict_proba(columns)
    realized = skm.roc_auc_score(labels, p)
    estimated = perf.cbpe(p).roc_auc
    assert abs(estimated - realized) < 0.03


def test_churn_report_lift_gains_calibration_and_cuts() -> None:
    p, y = _synthetic(1000)
    report = perf.churn_report(p, y, cuts=[("medium", 0.3), ("high", 0.6), ("critical", 0.8)])
    assert [row["top_share"] for row in report["lift"]] == [0.05, 0.1, 0.2]
    top = np.argsort(-p, kind="mergesort")[:100]
    assert report["lift"][1]["lift"] == pytest.approx(y[top].mean() / y.mean(), abs=1e-4)
    assert report["lift"][1]["captured"] == pytest.approx(y[top].sum() / y.sum(), abs=1e-4)
    assert len(report["gains"]) >= 11
    assert report["gains"][0]["captured"] == 0
    assert report["gains"][-1]["captured"] == 1
    assert sum(b["n"] for b in report["calibration"]) == 1000
    high = report["threshold_table"][1]
    assert high["precision"] == pytest.approx(skm.precision_score(y, p >= 0.6), abs=1e-4)
    assert high["recall"] == pytest.approx(skm.recall_score(y, p >= 0.6), abs=1e-4)


def test_backtest_without_dates_says_why(telco) -> None:
    frame, labels = telco
    result = backtest(frame, labels, None)
    assert result["result"] is None
    assert "no dates" in result["reason"]
