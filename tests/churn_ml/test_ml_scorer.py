"""The compiled scorers reproduce the sklearn pipeline, and their explanations add up."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churn_ml.features import FACTOR_GROUPS, FEATURE_SPEC_VERSION
from churn_ml.schema import ENUM_FIELDS, FIELD_ORDER, INTERNET_ADDON_FIELDS, validate_records
from churn_ml.scoring.compiler import compile_pipeline, scorer_from_dict
from churn_ml.scoring.factors import Factor
from churn_ml.scoring.linear import LinearScorer
from churn_ml.scoring.protocol import Scorer
from churn_ml.scoring.trees import TreeEnsembleScorer


def test_the_default_model_is_the_linear_scorer(model) -> None:
    assert model.algorithm == "logistic"
    assert isinstance(model.scorer, LinearScorer)
    assert isinstance(model.scorer, Scorer)


def test_scorer_equals_pipeline_on_the_demo_file(trained, telco, telco_columns) -> None:
    frame, _ = telco
    expected = trained.pipeline.predict_proba(frame)[:, 1]
    actual = trained.scorer.predict_proba(telco_columns)
    assert actual.shape == expected.shape
    assert np.max(np.abs(actual - expected)) < 1e-9


def test_contributions_have_one_column_per_factor_group(trained, telco_columns) -> None:
    contributions = trained.scorer.contributions(telco_columns)
    assert contributions.groups == FACTOR_GROUPS
    assert contributions.fields == tuple(g.feature for g in FACTOR_GROUPS)
    assert contributions.values.shape == (len(telco_columns["customer_id"]), len(FACTOR_GROUPS))
    assert np.isfinite(contributions.values).all()


def test_score_one_matches_the_batch_path(trained, telco_columns, telco_records) -> None:
    n = 400
    probabilities = trained.scorer.predict_proba(telco_columns)[:n]
    factors = trained.scorer.explain({k: v[:n] for k, v in telco_columns.items()}, top_k=5)
    for i, record in enumerate(telco_records[:n]):
        p, top = trained.scorer.score_one(record, 5)
        assert p == pytest.approx(probabilities[i], abs=1e-12)
        assert [(f.feature, f.fields, f.label) for f in top] == [(f.feature, f.fields, f.label) for f in factors[i]]
        assert [f.impact for f in top] == pytest.approx([f.impact for f in factors[i]], abs=1.5e-4)


def test_score_one_accepts_validated_records(model) -> None:
    raw = {
        "customer_id": "C-9",
        "partner": "Yes",
        "dependents": "no",
        "tenure_months": 0,
        "phone_service": False,
        "internet_service": "dsl",
        "online_security": "Yes",
        "online_backup": "No",
        "device_protection": "No",
        "tech_support": "No",
        "streaming_tv": "No",
        "streaming_movies": "No",
        "contract_type": "month-to-month",
        "paperless_billing": True,
        "payment_method": "Credit card (automatic)",
        "monthly_charges": 29.85,
        "total_charges": None,
        "age": 33,
    }
    result = validate_records([raw])
    assert not result.errors
    record = result.record(0)
    p, factors = model.scorer.score_one(record)
    assert p == pytest.approx(float(model.scorer.predict_proba(result.columns)[0]), abs=1e-12)
    assert 0.0 < p < 1.0
    assert factors


def test_factors_name_contract_fields_sorted_and_rounded(trained, telco_columns) -> None:
    allowed = set(FIELD_ORDER)
    for row in trained.scorer.explain(telco_columns, top_k=5):
        assert 1 <= len(row) <= 5
        assert all(isinstance(f, Factor) for f in row)
        assert all(f.feature in allowed for f in row)
        assert len({f.feature for f in row}) == len(row)
        impacts = [abs(f.impact) for f in row]
        assert impacts == sorted(impacts, reverse=True)
        assert all(round(f.impact, 4) == f.impact and f.impact != 0.0 for f in row)
    first = trained.scorer.explain({k: v[:3] for k, v in telco_columns.items()}, top_k=2)[0][0].as_dict()
    assert first.keys() == {"feature", "impact", "fields", "label"}
    assert first["fields"][0] == first["feature"]
    assert first["label"]


def test_contract_type_drives_month_to_month_risk(model, telco_records) -> None:
    record = next(r for r in telco_records if r["contract_type"] == "Month-to-month" and r["tenure_months"] < 6)
    _, factors = model.scorer.score_one(record, 20)
    by_field = {f.feature: f.impact for f in factors}
    assert by_field["contract_type"] > 0
    two_year = dict(record, contract_type="Two year")
    assert model.scorer.score_one(two_year)[0] < model.scorer.score_one(record)[0]


def test_json_round_trip_is_exact(trained, telco_columns) -> None:
    text = json.dumps(trained.scorer.to_dict(), allow_nan=False)
    again = scorer_from_dict(json.loads(text))
    assert type(again) is type(trained.scorer)
    assert np.array_equal(again.predict_proba(telco_columns), trained.scorer.predict_proba(telco_columns))
    assert again.explain({k: v[:50] for k, v in telco_columns.items()}) == trained.scorer.explain(
        {k: v[:50] for k, v in telco_columns.items()}
    )


def test_linear_scorer_is_small(model) -> None:
    assert len(json.dumps(model.scorer.to_dict())) < 10_000


def test_from_dict_refuses_other_spec_or_kind(trained) -> None:
    data = trained.scorer.to_dict()
    with pytest.raises(ValueError, match="feature spec"):
        scorer_from_dict({**data, "feature_spec_version": FEATURE_SPEC_VERSION + "x"})
    with pytest.raises(ValueError):
        scorer_from_dict({**data, "kind": "neural"})
    with pytest.raises(ValueError):
        scorer_from_dict({**data, "format": "pickle"})


def test_tree_scorer_rejects_out_of_range_nodes(boosted) -> None:
    data = boosted.scorer.to_dict()
    nodes = dict(data["nodes"])
    nodes["left"] = [10**9, *nodes["left"][1:]]
    with pytest.raises(ValueError, match="out of range"):
        TreeEnsembleScorer.from_dict({**data, "nodes": nodes})


def test_unknown_categories_score_like_the_pipeline(trained, telco) -> None:
    frame, _ = telco
    odd = frame.head(20).copy()
    odd["payment_method"] = "Cryptocurrency"
    odd.loc[odd.index[:5], "gender"] = None
    expected = trained.pipeline.predict_proba(odd)[:, 1]
    actual = trained.scorer.predict_proba({k: odd[k].to_numpy() for k in odd.columns})
    assert np.max(np.abs(actual - expected)) < 1e-9


def test_compile_refuses_an_unknown_pipeline() -> None:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    with pytest.raises(ValueError):
        compile_pipeline(Pipeline([("scale", StandardScaler())]))


def test_extreme_inputs_do_not_overflow(model, telco_records) -> None:
    record = dict(telco_records[0], monthly_charges=10_000.0, tenure_months=600, total_charges=6_000_000.0)
    p, _ = model.scorer.score_one(record)
    assert 0.0 <= p <= 1.0
    assert math.isfinite(p)


def test_score_one_is_fast(model, telco_records) -> None:
    """The contract target is < 50 us; the bound here leaves room for a loaded CI machine."""
    records = telco_records[:2000]
    score = model.scorer.score_one
    for record in records[:200]:
        score(record)
    timings = []
    for record in records:
        start = time.perf_counter_ns()
        score(record)
        timings.append(time.perf_counter_ns() - start)
    assert np.median(timings) / 1000 < 100


def test_batch_scoring_is_fast(model, telco_columns) -> None:
    """Target >= 1,000,000 customers/s; asserted at a quarter of that to stay robust under load."""
    idx = np.random.default_rng(0).integers(0, len(telco_columns["tenure_months"]), 200_000)
    big = {k: v[idx] for k, v in telco_columns.items()}
    model.scorer.predict_proba(big)
    start = time.perf_counter()
    model.scorer.predict_proba(big)
    assert 200_000 / (time.perf_counter() - start) > 250_000


_YES_NO = st.sampled_from(["Yes", "No"])


@st.composite
def valid_records(draw) -> dict:
    phone = draw(st.booleans())
    internet = draw(st.sampled_from(ENUM_FIELDS["internet_service"]))
    tenure = draw(st.integers(0, 600))
    monthly = draw(st.floats(0, 10_000, allow_nan=False))
    total = None if tenure <= 1 and draw(st.booleans()) else draw(st.floats(0, 1e7, allow_nan=False))
    record = {
        "senior_citizen": draw(st.booleans()),
        "partner": draw(st.booleans()),
        "dependents": draw(st.booleans()),
        "tenure_months": tenure,
        "phone_service": phone,
        "multiple_lines": draw(_YES_NO) if phone else "No phone service",
        "internet_service": internet,
        "contract_type": draw(st.sampled_from(ENUM_FIELDS["contract_type"])),
        "paperless_billing": draw(st.booleans()),
        "payment_method": draw(st.sampled_from(ENUM_FIELDS["payment_method"])),
        "monthly_charges": monthly,
        "total_charges": total,
        "age": draw(st.none() | st.integers(18, 120)),
        "income": draw(st.none() | st.floats(0, 1e7, allow_nan=False)),
    }
    for name in INTERNET_ADDON_FIELDS:
        record[name] = "No internet service" if internet == "No" else draw(_YES_NO)
    return record


def _one_row(record: dict) -> dict[str, np.ndarray]:
    return {
        k: np.array([np.nan if v is None else v], dtype=np.float64)
        if k in ("tenure_months", "monthly_charges", "total_charges", "age", "income")
        else np.array([v], dtype=bool if isinstance(v, bool) else object)
        for k, v in record.items()
    }


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(record=valid_records())
def test_property_single_equals_batch_and_impacts_are_moves_to_the_reference(model, boosted, record) -> None:
    for scorer in (model.scorer, boosted.scorer):
        columns = _one_row(record)
        p_batch = float(scorer.predict_proba(columns)[0])
        p_one, top = scorer.score_one(record, len(FACTOR_GROUPS))
        assert p_one == pytest.approx(p_batch, rel=1e-9, abs=1e-12)
        impacts = scorer.contributions(columns).values[0]
        logit = float(scorer.logits(columns)[0])
        for group, impact in zip(FACTOR_GROUPS, impacts, strict=True):
            moved = scorer.features.move_record(record, group.fields)
            moved_logit = float(scorer.logits(_one_row(moved))[0])
            assert impact == pytest.approx(logit - moved_logit, rel=1e-9, abs=1e-9)
        assert {f.feature: f.impact for f in top} == {
            g.feature: pytest.approx(round(v, 4), abs=1.5e-4) for g, v in zip(FACTOR_GROUPS, impacts, strict=True)
            if round(v, 4) != 0.0
        }


def test_empty_batches_and_zero_factors(trained, telco_columns) -> None:
    empty = {k: v[:0] for k, v in telco_columns.items()}
    assert trained.scorer.predict_proba(empty).shape == (0,)
    assert trained.scorer.explain(empty) == []
    assert trained.scorer.contributions(empty).values.shape == (0, len(FACTOR_GROUPS))
    assert trained.scorer.explain({k: v[:2] for k, v in telco_columns.items()}, top_k=0) == [[], []]
