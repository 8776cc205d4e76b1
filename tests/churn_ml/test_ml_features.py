"""Feature engineering: formulas, imputation, and the scalar path agreeing with the vectorised one."""

from __future__ import annotations

import math

import numpy as np
import pytest

from churn_ml.features import (
    ATTRIBUTION_FIELDS,
    CATEGORICAL_FEATURES,
    FEATURE_SPEC_VERSION,
    NUMERIC_FEATURES,
    NUMERIC_NAMES,
    FeatureBuilder,
    FeatureTransformer,
    encode_categories,
)
from churn_ml.schema import FIELD_ORDER

RECORD = {
    "customer_id": "C-1",
    "gender": "female",
    "senior_citizen": False,
    "partner": True,
    "dependents": False,
    "tenure_months": 10,
    "phone_service": True,
    "multiple_lines": "Yes",
    "internet_service": "Fiber optic",
    "online_security": "No",
    "online_backup": "Yes",
    "device_protection": "No",
    "tech_support": "Yes",
    "streaming_tv": "No",
    "streaming_movies": "No",
    "contract_type": "Month-to-month",
    "paperless_billing": True,
    "payment_method": "Electronic check",
    "monthly_charges": 90.0,
    "total_charges": 800.0,
    "age": None,
    "income": None,
}


def columns_of(*records: dict) -> dict[str, np.ndarray]:
    out = {}
    for name in RECORD:
        values = [r.get(name) for r in records]
        if name in ("tenure_months", "monthly_charges", "total_charges", "age", "income"):
            out[name] = np.array([np.nan if v is None else float(v) for v in values])
        elif isinstance(RECORD[name], bool):
            out[name] = np.array(values, dtype=bool)
        else:
            out[name] = np.array(values, dtype=object)
    return out


def test_formulas_on_one_record() -> None:
    builder = FeatureBuilder(age_fill=40.0, income_fill=50_000.0)
    codes, numeric = builder.transform_one(RECORD)
    assert codes["contract_type"] == 0
    assert codes["tenure_bucket"] == 1  # 7-12 months
    assert numeric["avg_monthly_charge"] == pytest.approx(80.0)
    assert numeric["charge_trend"] == pytest.approx(10.0)  # the bill went up
    # phone, extra line, internet, online backup, tech support
    assert numeric["services_count"] == 5.0
    assert numeric["log_tenure"] == pytest.approx(math.log(11))
    assert numeric["month_to_month_x_log_tenure"] == pytest.approx(math.log(11))
    assert numeric["fiber_x_log_tenure"] == pytest.approx(math.log(11))
    assert numeric["total_charges_missing"] == 0.0
    assert numeric["age"] == 40.0
    assert numeric["age_missing"] == 1.0
    assert numeric["log_income"] == pytest.approx(math.log1p(50_000.0))
    assert numeric["income_missing"] == 1.0


def test_missing_total_charges_is_imputed_from_tenure() -> None:
    builder = FeatureBuilder(age_fill=0.0, income_fill=0.0)
    one = dict(RECORD, tenure_months=1, total_charges=None)
    zero = dict(RECORD, tenure_months=0, total_charges=None)
    eng = builder.transform(columns_of(one, zero))
    assert eng.numeric["total_charges"].tolist() == [90.0, 0.0]
    assert eng.numeric["total_charges_missing"].tolist() == [1.0, 1.0]
    # Tenure 0: the average charge falls back to the monthly charge, so the trend is 0.
    assert eng.numeric["avg_monthly_charge"].tolist() == [90.0, 90.0]
    assert eng.numeric["charge_trend"].tolist() == [0.0, 0.0]
    assert eng.codes["tenure_bucket"].tolist() == [0, 0]


def test_optional_fields_use_training_medians() -> None:
    train = columns_of(dict(RECORD, age=30, income=1000.0), dict(RECORD, age=50, income=None), RECORD)
    builder = FeatureBuilder.fit(train)
    assert builder.age_fill == 40.0
    assert builder.income_fill == 1000.0
    # Never observed: a constant fill, which a linear model weighs at exactly zero.
    assert FeatureBuilder.fit(columns_of(RECORD)).age_fill == 0.0
    given = builder.transform_one(dict(RECORD, age=70))[1]
    assert given["age"] == 70.0
    assert given["age_missing"] == 0.0


def test_tenure_bucket_edges() -> None:
    builder = FeatureBuilder(age_fill=0.0, income_fill=0.0)
    tenures = [0, 6, 7, 12, 13, 24, 25, 48, 49, 600]
    records = [dict(RECORD, tenure_months=t, total_charges=t * 90.0) for t in tenures]
    vectorised = builder.transform(columns_of(*records)).codes["tenure_bucket"].tolist()
    assert vectorised == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert [builder.transform_one(r)[0]["tenure_bucket"] for r in records] == vectorised


def test_unknown_and_absent_categories_code_minus_one() -> None:
    values = np.array(["DSL", "Satellite", None, "dsl", "Fiber optic"], dtype=object)
    assert encode_categories(values, ("DSL", "Fiber optic", "No")).tolist() == [0, -1, -1, -1, 1]
    long = np.tile(values, 20)  # the factorising path for longer columns
    assert encode_categories(long, ("DSL", "Fiber optic", "No")).tolist() == [0, -1, -1, -1, 1] * 20


def test_optional_columns_may_be_absent() -> None:
    builder = FeatureBuilder(age_fill=0.0, income_fill=0.0)
    columns = columns_of(RECORD)
    for name in ("gender", "senior_citizen", "total_charges", "age", "income", "customer_id"):
        del columns[name]
    eng = builder.transform(columns)
    assert eng.numeric["senior_citizen"].tolist() == [0.0]
    assert eng.numeric["total_charges_missing"].tolist() == [1.0]
    with pytest.raises(KeyError, match="contract_type"):
        builder.transform({k: v for k, v in columns.items() if k != "contract_type"})


def test_scalar_path_equals_vectorised_on_demo_file(telco_columns, telco_records) -> None:
    builder = FeatureBuilder.fit(telco_columns)
    eng = builder.transform(telco_columns)
    for i, record in enumerate(telco_records):
        codes, numeric = builder.transform_one(record)
        for name, code in codes.items():
            assert code == eng.codes[name][i], (i, name)
        for name in NUMERIC_NAMES:
            # math.log1p and numpy's log1p may differ in the last bit.
            assert numeric[name] == pytest.approx(eng.numeric[name][i], rel=1e-14, abs=1e-14), (i, name)


def test_every_feature_attributes_to_contract_fields() -> None:
    for feature in (*CATEGORICAL_FEATURES, *NUMERIC_FEATURES):
        assert feature.sources
        assert set(feature.sources) <= set(FIELD_ORDER)
    assert set(ATTRIBUTION_FIELDS) == set(FIELD_ORDER) - {"gender"}


def test_builder_serialisation_checks_spec_version() -> None:
    builder = FeatureBuilder(age_fill=41.5, income_fill=0.0)
    assert FeatureBuilder.from_dict(builder.to_dict()) == builder
    with pytest.raises(ValueError, match="feature spec"):
        FeatureBuilder.from_dict({**builder.to_dict(), "spec_version": FEATURE_SPEC_VERSION + "x"})


def test_sklearn_adapter(telco) -> None:
    frame, _ = telco
    out = FeatureTransformer().fit(frame).transform(frame.head(3))
    assert list(out.columns) == [f.name for f in CATEGORICAL_FEATURES] + list(NUMERIC_NAMES)
    assert out["tenure_bucket"].tolist() == ["0-6", "13-24", "25-48"]


def test_pipelines_pickled_before_the_adapter_moved_still_load():
    import pickle

    from churn_ml import feature_transformer, features

    assert features.FeatureTransformer is feature_transformer.FeatureTransformer
    # A pickle of the class as it was written before the move names churn_ml.features.
    old = pickle.dumps(feature_transformer.FeatureTransformer, protocol=0).replace(  # text opcodes: safe to edit
        b"churn_ml.feature_transformer", b"churn_ml.features"
    )
    assert pickle.loads(old) is feature_transformer.FeatureTransformer
