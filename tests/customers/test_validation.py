"""Every rule of the contract's customer record, as an API client meets it."""

from __future__ import annotations

import pytest

from tests.factories import record

pytestmark = pytest.mark.django_db

URL = "/api/v1/customers/"


def post(client, body):  # type: ignore[no-untyped-def]
    return client.post(URL, body, format="json")


def errors_of(response):  # type: ignore[no-untyped-def]
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid"
    return body["errors"]


def test_valid_record_is_created(key_client):
    response = post(key_client, record())
    assert response.status_code == 201
    body = response.json()
    assert body["customer_id"] == "C-1"
    assert body["quality"] == {"completeness": pytest.approx(90.48, abs=0.01), "warnings": []}


@pytest.mark.parametrize("bad", ["", "has space", "x" * 65, "é", "a/b"])
def test_customer_id_pattern(key_client, bad):
    assert "customer_id" in errors_of(post(key_client, record(customer_id=bad)))


def test_customer_id_64_chars_and_all_allowed_symbols(key_client):
    cid = "Ab0_.:-" + "z" * 57
    assert post(key_client, record(customer_id=cid)).status_code == 201


def test_customer_id_required(key_client):
    assert errors_of(post(key_client, record(customer_id=...)))["customer_id"] == ["This field is required."]


@pytest.mark.parametrize(("given", "stored"), [("FEMALE", "female"), ("Male", "male"), (None, None)])
def test_gender_is_case_insensitive_and_optional(key_client, given, stored):
    assert post(key_client, record(gender=given)).json()["gender"] == stored


def test_gender_unknown_value(key_client):
    assert "gender" in errors_of(post(key_client, record(gender="other")))


@pytest.mark.parametrize(
    ("given", "stored"), [(True, True), ("Yes", True), ("no", False), (1, True), (0, False), ("true", True)]
)
def test_booleans_accept_the_contract_forms(key_client, given, stored):
    assert post(key_client, record(partner=given)).json()["partner"] is stored


@pytest.mark.parametrize("bad", ["maybe", 2, [], {"a": 1}])
def test_booleans_reject_anything_else(key_client, bad):
    assert "partner" in errors_of(post(key_client, record(partner=bad)))


@pytest.mark.parametrize("name", ["partner", "dependents", "phone_service", "paperless_billing"])
def test_scoring_booleans_are_required(key_client, name):
    assert errors_of(post(key_client, record(**{name: ...})))[name] == ["This field is required."]


def test_senior_citizen_defaults_to_false(key_client):
    assert post(key_client, record(senior_citizen=...)).json()["senior_citizen"] is False


def test_multiple_lines_must_say_no_phone_service_without_phone(key_client):
    errors = errors_of(post(key_client, record(phone_service=False, multiple_lines="No")))
    assert errors["multiple_lines"] == ['Must be "No phone service" when phone_service is false.']


def test_no_phone_service_only_without_phone(key_client):
    errors = errors_of(post(key_client, record(phone_service=True, multiple_lines="No phone service")))
    assert errors["multiple_lines"] == ['May be "No phone service" only when phone_service is false.']


def test_multiple_lines_derived_when_absent_and_no_phone(key_client):
    body = post(key_client, record(phone_service=False, multiple_lines=...)).json()
    assert body["multiple_lines"] == "No phone service"


@pytest.mark.parametrize(
    "name",
    ["online_security", "online_backup", "device_protection", "tech_support", "streaming_tv", "streaming_movies"],
)
def test_internet_addons_must_follow_internet_service(key_client, name):
    no_internet = dict.fromkeys(
        ["online_security", "online_backup", "device_protection", "tech_support", "streaming_tv", "streaming_movies"],
        "No internet service",
    )
    errors = errors_of(post(key_client, record(internet_service="No", **{**no_internet, name: "Yes"})))
    assert errors == {name: ['Must be "No internet service" when internet_service is "No".']}
    errors = errors_of(post(key_client, record(internet_service="DSL", **{name: "No internet service"})))
    assert errors == {name: ['May be "No internet service" only when internet_service is "No".']}


def test_internet_addons_derived_without_internet(key_client):
    body = post(
        key_client,
        record(
            internet_service="no",
            online_security=...,
            online_backup=...,
            device_protection=...,
            tech_support=...,
            streaming_tv=...,
            streaming_movies=...,
        ),
    ).json()
    assert body["internet_service"] == "No"
    assert body["streaming_tv"] == "No internet service"


@pytest.mark.parametrize(
    ("field", "given", "stored"),
    [
        ("contract_type", "one YEAR", "One year"),
        ("internet_service", "fiber optic", "Fiber optic"),
        ("payment_method", "Bank transfer (automatic)", "Bank transfer"),
        ("payment_method", "credit card (automatic)", "Credit card"),
        ("payment_method", "MAILED CHECK", "Mailed check"),
        ("multiple_lines", "yes", "Yes"),
    ],
)
def test_enumerations_match_case_insensitively_and_store_canonical(key_client, field, given, stored):
    assert post(key_client, record(**{field: given})).json()[field] == stored


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("contract_type", "Three year"),
        ("payment_method", "Bitcoin"),
        ("internet_service", "Cable"),
        ("contract_type", 12),
    ],
)
def test_unknown_enumeration_values(key_client, field, bad):
    message = errors_of(post(key_client, record(**{field: bad})))[field][0]
    assert message.startswith("Must be one of")


@pytest.mark.parametrize(
    ("field", "ok", "bad"),
    [
        ("tenure_months", [0, 600, "12"], [-1, 601, 1.5, "twelve", True]),
        ("monthly_charges", [0, 10000, 19.99], [-0.01, 10000.01, "abc", False]),
        ("age", [18, 120, None], [17, 121, 30.5]),
        ("income", [0, 1e6, None], [-1]),
        ("total_charges", [0, 1e9], [-5, "lots"]),
    ],
)
def test_numeric_ranges(key_client, field, ok, bad):
    for value in ok:
        extra = {"tenure_months": 1} if field == "total_charges" else {}
        response = post(key_client, record(**{field: value, **extra}))
        assert response.status_code in (200, 201), (value, response.json())
    for value in bad:
        assert field in errors_of(post(key_client, record(**{field: value}))), value


def test_total_charges_null_only_for_tenure_0_or_1(key_client):
    assert post(key_client, record(tenure_months=0, total_charges=None)).status_code == 201
    assert post(key_client, record(customer_id="C-2", tenure_months=1, total_charges=None)).status_code == 201
    errors = errors_of(post(key_client, record(customer_id="C-3", tenure_months=2, total_charges=None)))
    assert errors["total_charges"] == ["May be null only when tenure_months is 0 or 1; it is required here."]


def test_total_charges_far_from_expected_is_a_warning_not_an_error(key_client):
    response = post(key_client, record(tenure_months=24, monthly_charges=50, total_charges=10))
    assert response.status_code == 201
    assert response.json()["quality"]["warnings"] == [
        "total_charges 10 is far from tenure_months x monthly_charges (1200)."
    ]


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-inf"])
def test_nan_and_infinity_strings_are_errors(key_client, bad):
    assert errors_of(post(key_client, record(monthly_charges=bad)))["monthly_charges"][0].startswith(
        "Must be a finite number"
    )


def test_nan_literal_in_json_is_a_parse_error(key_client):
    response = key_client.post(URL, '{"customer_id": "C-1", "monthly_charges": NaN}', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_unknown_fields_are_errors(key_client):
    errors = errors_of(post(key_client, record(favourite_colour="blue")))
    assert errors == {"favourite_colour": ["Unknown field."]}


def test_all_errors_reported_at_once(key_client):
    errors = errors_of(post(key_client, record(tenure_months=-1, contract_type="x", partner="?")))
    assert set(errors) == {"tenure_months", "contract_type", "partner"}
