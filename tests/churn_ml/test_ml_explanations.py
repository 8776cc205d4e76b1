"""Explanations agree with the model (issue 10, point 1), for both model families.

A factor's impact must have the sign of the score's move when the factor's fields are set to
the reference customer's. The moves here are scored by the fitted sklearn pipeline, not by the
compiled scorer that computed the impacts, so the check is independent of the code under test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn_ml.features import (
    FACTOR_GROUPS,
    TENURE_AND_CHARGES,
    FeatureBuilder,
    affected_features,
)
from churn_ml.record import check_record
from churn_ml.scoring.compiler import scorer_from_dict
from churn_ml.scoring.factors import Factor


@pytest.fixture(scope="module")
def factors(trained, telco_columns):
    return trained.scorer.explain(telco_columns, top_k=5)


def _pipeline_logits(pipeline, records: list[dict]) -> np.ndarray:
    p = pipeline.predict_proba(pd.DataFrame(records))[:, 1]
    return np.log(p) - np.log1p(-p)


def test_moving_a_factor_to_the_reference_moves_the_score_its_way(trained, factors, telco, telco_records) -> None:
    """Every top factor of every demo customer, scored by the sklearn pipeline."""
    frame, _ = telco
    builder = trained.scorer.features
    moved, owners, impacts = [], [], []
    for i, row in enumerate(factors):
        for factor in row:
            moved.append(builder.move_record(telco_records[i], factor.fields))
            owners.append(i)
            impacts.append(factor.impact)
    before = _pipeline_logits(trained.pipeline, telco_records)[np.asarray(owners)]
    after = _pipeline_logits(trained.pipeline, moved)
    impacts = np.asarray(impacts)
    assert len(impacts) > 4 * len(frame)
    disagree = np.flatnonzero(np.sign(before - after) != np.sign(impacts))
    assert disagree.size == 0, f"{disagree.size} of {impacts.size} factors point against the model"
    # and the impact is that move, to the rounding of impacts
    assert np.max(np.abs((before - after) - impacts)) < 1e-4 + 1e-8


def test_short_tenure_raises_the_risk(factors, telco_columns) -> None:
    """The named defect: tenure <= 6 months showed as lowering the risk for every such customer."""
    tenure = telco_columns["tenure_months"]
    named = [
        next(f.impact for f in factors[i] if f.feature == "tenure_months")
        for i in np.flatnonzero(tenure <= 6)
        if any(f.feature == "tenure_months" for f in factors[i])
    ]
    assert len(named) >= 500
    raising = sum(1 for impact in named if impact > 0)
    assert raising >= 0.95 * len(named), f"{raising} of {len(named)} short-tenure customers get a raising factor"


def test_month_to_month_raises_and_two_year_lowers(trained, telco_columns) -> None:
    contract = telco_columns["contract_type"]
    impacts = trained.scorer.contributions(telco_columns).values[:, [g.feature for g in FACTOR_GROUPS].index(
        "contract_type"
    )]
    assert (impacts[contract == "Month-to-month"] > 0).all()
    assert (impacts[contract == "Two year"] < 0).all()
    assert (impacts[contract == "One year"] == 0).all()  # the reference's own contract


def test_factors_carry_their_group(factors) -> None:
    seen = {f.feature: f for row in factors for f in row}
    tenure = seen["tenure_months"]
    assert tenure.fields == ("tenure_months", "monthly_charges", "total_charges")
    assert tenure.label == "Tenure and charges to date"
    # a grouped field never leads a factor of its own
    assert not {"monthly_charges", "total_charges"} & set(seen)
    assert seen["contract_type"].as_dict() == {
        "feature": "contract_type", "impact": seen["contract_type"].impact, "fields": ["contract_type"],
        "label": "Contract",
    }


def test_the_reference_customer_is_a_valid_record_learnt_from_training(model) -> None:
    reference = model.scorer.features.reference_record()
    assert not check_record({**reference, "customer_id": "reference"}).errors
    assert reference["contract_type"] == "One year"
    assert reference["total_charges"] == pytest.approx(reference["tenure_months"] * reference["monthly_charges"])
    assert 20 <= reference["tenure_months"] <= 40  # the training median, about 29 on the demo data


def test_moves_keep_dependent_fields_valid(model, telco_records) -> None:
    builder = model.scorer.features
    no_internet = next(r for r in telco_records if r["internet_service"] == "No")
    no_phone = next(r for r in telco_records if not r["phone_service"])
    # moving internet service on gives the add-ons the reference's values
    moved = builder.move_record(no_internet, ("internet_service",))
    assert moved["internet_service"] == "DSL"
    assert moved["online_security"] == "Yes"
    assert not check_record(moved).errors
    # an add-on alone cannot move while there is no internet: no change, no impact
    assert builder.move_record(no_internet, ("tech_support",)) == no_internet
    _, top = model.scorer.score_one(no_internet, len(FACTOR_GROUPS))
    assert "tech_support" not in {f.feature for f in top}
    moved = builder.move_record(no_phone, ("phone_service",))
    assert moved["phone_service"] is True
    assert moved["multiple_lines"] == "No"
    assert not check_record(moved).errors


def test_tenure_group_recomputes_every_derived_feature() -> None:
    assert set(affected_features(TENURE_AND_CHARGES.fields)) == {
        "tenure_bucket", "tenure_months", "log_tenure", "monthly_charges", "total_charges", "log_total_charges",
        "avg_monthly_charge", "charge_trend", "total_charges_missing", "month_to_month_x_log_tenure",
        "fiber_x_log_tenure",
    }


def test_scorers_saved_before_the_reference_still_load(trained, telco_columns) -> None:
    data = trained.scorer.to_dict()
    features = {k: v for k, v in data["features"].items() if not k.startswith("reference_")}
    older = scorer_from_dict({**data, "features": features})
    assert np.array_equal(older.predict_proba(telco_columns), trained.scorer.predict_proba(telco_columns))
    assert older.features.reference_record()["tenure_months"] == 29
    assert older.explain({k: v[:20] for k, v in telco_columns.items()})


def test_a_stored_factor_without_group_gets_its_fields_words() -> None:
    assert Factor("contract_type", 0.5).as_dict()["fields"] == ["contract_type"]
    assert Factor("total_charges", -0.3).label == "Total charges"
    assert FeatureBuilder(age_fill=0.0, income_fill=0.0).reference_record()["monthly_charges"] == 70.6
