"""Training: split, quality bars, metrics, determinism, fingerprints."""

from __future__ import annotations

import numpy as np
import pytest

from churn_ml import evaluation
from churn_ml.artifact import dump_artifact
from churn_ml.features import FEATURE_SPEC_VERSION
from churn_ml.training import (
    AUTO_MARGIN,
    data_fingerprint,
    evaluate,
    split_indices,
    train,
)

METRIC_KEYS = {
    "roc_auc",
    "pr_auc",
    "accuracy",
    "f1",
    "brier",
    "ece",
    "cv_roc_auc_mean",
    "cv_roc_auc_std",
    "n_train",
    "n_test",
    "positive_rate",
}


def test_quality_bar_on_the_held_out_split(model, telco) -> None:
    """The bar others check on unseen Telco customers: ROC AUC >= 0.835 and Brier <= 0.14."""
    frame, labels = telco
    assert model.metrics["roc_auc"] >= 0.835
    assert model.metrics["brier"] <= 0.14
    recomputed = evaluate(model, frame, labels, seed=model.seed)
    assert recomputed["roc_auc"] == pytest.approx(model.metrics["roc_auc"], abs=1e-6)
    assert recomputed["brier"] == pytest.approx(model.metrics["brier"], abs=1e-6)
    assert recomputed["n"] == model.metrics["n_test"]


def test_probabilities_are_calibrated(model, telco) -> None:
    frame, labels = telco
    assert model.metrics["ece"] < 0.05
    _, test = split_indices(len(labels), labels, model.seed)
    p = model.scorer.predict_proba({k: frame[k].to_numpy()[test] for k in frame.columns})
    # Mean predicted churn within 3 points of the observed rate.
    assert abs(p.mean() - labels[test].mean()) < 0.03


def test_metrics_and_metadata(model, telco) -> None:
    frame, labels = telco
    assert set(model.metrics) >= METRIC_KEYS
    assert model.metrics["n_train"] + model.metrics["n_test"] == len(frame) == model.n_rows
    assert model.metrics["positive_rate"] == pytest.approx(labels.mean(), abs=1e-6)
    assert 0 < model.metrics["cv_roc_auc_std"] < 0.05
    assert model.metrics["cv_roc_auc_mean"] > 0.83
    assert model.feature_spec_version == FEATURE_SPEC_VERSION
    assert len(model.data_fingerprint) == 64
    assert model.data_fingerprint == data_fingerprint(frame, labels)
    assert set(model.candidates) == {"logistic", "gradient_boosting"}
    assert model.candidates["gradient_boosting"] <= model.candidates["logistic"] + AUTO_MARGIN
    assert "scikit-learn" in model.library_versions


def test_evaluate_accepts_pipeline_scorer_and_model(model, telco) -> None:
    frame, labels = telco
    by_model = evaluate(model, frame, labels)
    by_scorer = evaluate(model.scorer, frame, labels)
    by_pipeline = evaluate(model.pipeline, frame, labels)
    assert by_model == by_scorer
    assert by_pipeline["roc_auc"] == pytest.approx(by_scorer["roc_auc"], abs=1e-12)
    assert by_pipeline["brier"] == pytest.approx(by_scorer["brier"], abs=1e-12)


def test_boosting_is_evaluated_on_the_same_split(boosted, model, telco) -> None:
    assert np.array_equal(boosted.test_indices, model.test_indices)
    assert boosted.algorithm == "gradient_boosting"
    assert boosted.metrics["roc_auc"] > 0.83


def test_split_is_stratified_deterministic_and_disjoint() -> None:
    labels = np.array([True] * 100 + [False] * 300)
    train_a, test_a = split_indices(400, labels, 5)
    train_b, test_b = split_indices(400, labels, 5)
    assert np.array_equal(test_a, test_b)
    assert np.array_equal(train_a, train_b)
    assert len(test_a) == 80
    assert labels[test_a].sum() == 20
    assert not set(train_a) & set(test_a)
    assert sorted([*train_a, *test_a]) == list(range(400))
    assert not np.array_equal(split_indices(400, labels, 6)[1], test_a)
    with pytest.raises(ValueError):
        split_indices(399, labels, 5)


def test_training_is_deterministic(telco) -> None:
    frame, labels = telco
    first = train(frame, labels, seed=7, algorithm="logistic")
    second = train(frame, labels, seed=7, algorithm="logistic")
    assert first.scorer.to_dict() == second.scorer.to_dict()
    assert first.metrics == second.metrics
    assert dump_artifact(first) == dump_artifact(second)
    assert np.array_equal(first.test_indices, split_indices(len(labels), labels, 7)[1])
    assert not np.array_equal(split_indices(len(labels), labels, 8)[1], first.test_indices)


def test_fingerprint_tracks_data_and_labels(telco) -> None:
    frame, labels = telco
    base = data_fingerprint(frame, labels)
    flipped = labels.copy()
    flipped[0] = not flipped[0]
    assert data_fingerprint(frame, flipped) != base
    assert data_fingerprint(frame.iloc[::-1].reset_index(drop=True), labels[::-1]) != base
    changed = frame.copy()
    changed.loc[0, "monthly_charges"] += 0.01
    assert data_fingerprint(changed, labels) != base
    as_dict = {k: frame[k].to_numpy() for k in frame.columns}
    assert data_fingerprint(as_dict, labels) == base


def test_training_input_errors(telco) -> None:
    frame, labels = telco
    with pytest.raises(ValueError, match="algorithm"):
        train(frame, labels, algorithm="random_forest")
    with pytest.raises(ValueError, match="labels"):
        train(frame, labels[:-1])
    with pytest.raises(ValueError, match="churners"):
        train(frame.head(40), np.zeros(40, dtype=bool))


def test_reported_metrics_match_evaluation_module(model, telco) -> None:
    frame, labels = telco
    _, test = split_indices(len(labels), labels, model.seed)
    p = model.scorer.predict_proba({k: frame[k].to_numpy()[test] for k in frame.columns})
    report = evaluation.classification_metrics(p, labels[test])
    assert model.metrics["pr_auc"] == pytest.approx(report.pr_auc, abs=1e-6)
    assert model.metrics["f1"] == pytest.approx(report.f1, abs=1e-6)
    assert model.metrics["accuracy"] == pytest.approx(report.accuracy, abs=1e-6)
