"""Reference statistics and the population stability index."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from churn_ml.drift import (
    CategoricalReference,
    NumericReference,
    ReferenceStats,
    build_reference,
    drift_summary,
    population_stability,
    psi,
)


def test_psi_hand_computed() -> None:
    # (0.25 - 0.5) ln(0.25/0.5) + (0.75 - 0.5) ln(0.75/0.5) = 0.25 (ln 2 + ln 1.5)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25 * (math.log(2) + math.log(1.5)))
    # Counts are normalised first.
    assert psi([50, 50], [25, 75]) == pytest.approx(psi([0.5, 0.5], [0.25, 0.75]))


def test_psi_empty_bin_is_finite() -> None:
    value = psi([0.5, 0.5, 0.0], [0.4, 0.4, 0.2])
    assert math.isfinite(value)
    assert value > 1.0


def test_identical_sample_has_zero_psi(telco_columns: dict[str, np.ndarray]) -> None:
    reference = build_reference(telco_columns)
    summary = drift_summary(reference, telco_columns)
    assert summary.max_psi == pytest.approx(0.0, abs=1e-9)
    assert summary.drifted == ()
    assert "gender" in summary.psi
    assert "customer_id" not in summary.psi


def test_random_half_is_stable(telco_columns: dict[str, np.ndarray]) -> None:
    reference = build_reference(telco_columns)
    half = np.random.default_rng(1).permutation(len(telco_columns["tenure_months"]))[:2800]
    sample = {k: v[half] for k, v in telco_columns.items()}
    assert drift_summary(reference, sample).max_psi < 0.05


def test_shifted_sample_drifts(telco_columns: dict[str, np.ndarray]) -> None:
    reference = build_reference(telco_columns)
    shifted = dict(telco_columns)
    shifted["tenure_months"] = telco_columns["tenure_months"] + 24
    shifted["monthly_charges"] = telco_columns["monthly_charges"] * 1.3
    contract = telco_columns["contract_type"].copy()
    contract[: len(contract) // 2] = "Two year"
    shifted["contract_type"] = contract
    summary = drift_summary(reference, shifted)
    assert summary.psi["tenure_months"] > 0.2
    assert summary.psi["monthly_charges"] > 0.2
    assert summary.psi["contract_type"] > 0.2
    assert summary.psi["partner"] == pytest.approx(0.0, abs=1e-9)
    assert set(summary.drifted) == {"tenure_months", "monthly_charges", "contract_type"}
    assert summary.max_feature == summary.drifted[0]
    assert summary.max_psi == max(summary.psi.values())


def test_numeric_bins_and_nulls() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, np.nan] * 20)
    ref = build_reference({"income": values}).features["income"]
    assert isinstance(ref, NumericReference)
    assert ref.proportions[-1] == pytest.approx(0.2)  # the null bin
    assert sum(ref.proportions) == pytest.approx(1.0)
    # Nulls appearing where there were none is drift too.
    all_null = build_reference({"age": np.full(50, np.nan)})
    assert all_null.features["age"].proportions == (0.0, 1.0)
    assert population_stability(all_null, {"age": np.full(50, 40.0)})["age"] > 0.2


def test_unseen_categories_go_to_other() -> None:
    reference = build_reference({"contract_type": np.array(["Month-to-month", "One year"] * 50, dtype=object)})
    ref = reference.features["contract_type"]
    assert isinstance(ref, CategoricalReference)
    assert ref.categories == ("Month-to-month", "One year")
    assert ref.proportions == (0.5, 0.5, 0.0)
    counts = ref.bin_counts(np.array(["Two year", None, "One year"], dtype=object))
    assert counts.tolist() == [0.0, 1.0, 2.0]


def test_bool_fields_are_categorical() -> None:
    reference = build_reference({"partner": np.array([True, False, True, True])})
    assert reference.features["partner"].categories == ("false", "true")
    assert reference.features["partner"].proportions == (0.25, 0.75, 0.0)


def test_reference_is_json(telco_columns: dict[str, np.ndarray]) -> None:
    reference = build_reference(telco_columns)
    text = json.dumps(reference.to_dict(), allow_nan=False)
    again = ReferenceStats.from_dict(json.loads(text))
    assert again == reference
    assert drift_summary(again, telco_columns).as_dict() == drift_summary(reference, telco_columns).as_dict()
    with pytest.raises(ValueError):
        ReferenceStats.from_dict({"format": "other"})


def test_model_reference_includes_prediction_drift(model, telco_columns) -> None:
    assert "churn_probability" in model.reference.features
    assert "tenure_months" in model.reference.features
    probabilities = model.scorer.predict_proba(telco_columns)
    stability = population_stability(model.reference, {"churn_probability": probabilities})
    assert stability["churn_probability"] < 0.05


# --- thresholds that hold at any sample size (issue 12, point 7) ------------------------------


@pytest.fixture(scope="module")
def train_reference(telco, telco_columns):
    from churn_ml.training import split_indices

    frame, labels = telco
    train_rows, _ = split_indices(len(frame), labels, 42)
    return build_reference({k: v[train_rows] for k, v in telco_columns.items()})


@pytest.mark.parametrize(("n", "trials"), [(100, 100), (1_000, 100), (100_000, 20)])
def test_undrifted_samples_raise_no_alarm_in_95_percent_of_trials_at_any_size(
    train_reference, telco_columns, n, trials
) -> None:
    from churn_ml.drift import drift_test

    rng = np.random.default_rng(n)
    rows = len(telco_columns["customer_id"])
    alarms = 0
    for trial in range(trials):
        sample = {k: v[rng.integers(0, rows, n)] for k, v in telco_columns.items()}
        alarms += bool(drift_test(train_reference, sample, seed=trial).drifted)
    assert alarms <= 0.05 * trials


@pytest.mark.parametrize("n", [1_000, 100_000])
def test_monthly_charges_20_percent_higher_is_detected_from_1000_rows(train_reference, telco_columns, n) -> None:
    from churn_ml.drift import drift_test

    rng = np.random.default_rng(n + 1)
    rows = len(telco_columns["customer_id"])
    for trial in range(5):
        sample = {k: v[rng.integers(0, rows, n)] for k, v in telco_columns.items()}
        sample["monthly_charges"] = sample["monthly_charges"] * 1.2
        result = drift_test(train_reference, sample, seed=trial)
        assert "monthly_charges" in result.drifted
        assert result.p_values["monthly_charges"] < 0.01
        assert result.psi["monthly_charges"] > result.thresholds["monthly_charges"]


def test_the_threshold_shrinks_with_the_sample_size(train_reference, telco_columns) -> None:
    from churn_ml.drift import drift_test

    small = drift_test(train_reference, {k: v[:100] for k, v in telco_columns.items()})
    large = drift_test(train_reference, telco_columns)
    assert large.thresholds["tenure_months"] < small.thresholds["tenure_months"] / 5
    # A fixed 0.2 would sit far above the large sample's threshold and below the small one's noise.
    assert large.thresholds["tenure_months"] < 0.2
