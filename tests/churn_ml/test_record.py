"""check_record (one record, plain Python) must agree with validate_records (columns, numpy)."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churn_ml.record import check_record
from churn_ml.schema import BOOL_FIELDS, ENUM_ALIASES, ENUM_FIELDS, NUMBER_FIELDS, validate_records

OMIT = object()

junk = st.sampled_from([None, "", "null", "maybe", "NaN", "Infinity", [], {"a": 1}, True, False, 0, 1, 2, -1,
                        1.5, float("nan"), float("inf"), "  yes ", "No"])
text_numbers = st.sampled_from(["12", " 7 ", "1,200.5", "abc", "-3", "601", "18", "0", "1e3"])


def field_values(name: str):  # type: ignore[no-untyped-def]
    if name in BOOL_FIELDS:
        good = st.sampled_from([True, False, "Yes", "no", "TRUE", 1, 0, "1", "0"])
    elif name in ENUM_FIELDS:
        options = list(ENUM_FIELDS[name]) + list(ENUM_ALIASES.get(name, {}))
        good = st.sampled_from(options + [o.upper() for o in options] + ["Other"])
    else:
        rule = NUMBER_FIELDS[name]
        top = rule.maximum if rule.maximum is not None else 1e6
        good = st.one_of(
            st.integers(int(rule.minimum) - 2, int(top) + 2),
            st.floats(rule.minimum - 1, top + 1, allow_nan=False),
            text_numbers,
        )
    return st.one_of(good, good, good, junk, st.just(OMIT))


records = st.fixed_dictionaries(
    {
        "customer_id": st.one_of(st.sampled_from(["C-1", " C-2 ", "bad id", "", "x" * 65, 42, None]), st.just(OMIT)),
        **{name: field_values(name) for name in (*BOOL_FIELDS, *ENUM_FIELDS, *NUMBER_FIELDS)},
    },
    optional={"unknown_field": st.just(1)},
).map(lambda d: {k: v for k, v in d.items() if v is not OMIT})


def _same(a, b):  # type: ignore[no-untyped-def]
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return a == b and type(a) is type(b)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records)
def test_check_record_agrees_with_the_column_validator(record):
    single = check_record(record)
    columns = validate_records([record])
    assert single.errors == columns.errors.get(0, {})
    assert single.warnings == columns.warnings.get(0, [])
    assert single.completeness == pytest.approx(float(columns.completeness()[0]))
    expected = columns.record(0)
    assert set(single.record) == set(expected)
    for name, value in expected.items():
        assert _same(single.record[name], value), (name, single.record[name], value)


def test_non_object_record():
    assert check_record([1, 2]).errors == {"non_field_errors": ["Must be a JSON object; got an array."]}


def test_valid_record_has_no_errors_and_canonical_values():
    check = check_record({
        "customer_id": "C-1", "partner": "yes", "dependents": 0, "phone_service": False, "paperless_billing": True,
        "internet_service": "no", "contract_type": "one year", "payment_method": "Credit card (automatic)",
        "tenure_months": "5", "monthly_charges": 20, "total_charges": 100,
    })
    assert check.ok
    assert check.record["multiple_lines"] == "No phone service"
    assert check.record["streaming_tv"] == "No internet service"
    assert check.record["payment_method"] == "Credit card"
    assert check.record["tenure_months"] == 5
