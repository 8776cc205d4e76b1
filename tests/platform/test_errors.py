"""No malformed request gets a 500 or an HTML page under /api/."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_wrong_content_type_is_415(key_client):
    response = key_client.post(
        "/api/v1/customers/", "customer_id=C-1", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


def test_invalid_json_is_400(key_client):
    response = key_client.post("/api/v1/customers/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


@pytest.mark.parametrize("body", ["[1, 2]", '"text"', "42", "null"])
def test_non_object_bodies_are_400(key_client, body):
    response = key_client.post("/api/v1/customers/", body, content_type="application/json")
    assert response.status_code == 400
    assert "Expected a JSON object" in response.json()["errors"]["non_field_errors"][0]


def test_ten_megabyte_body_of_garbage_records_rejects_each_one(key_client):
    body = '{"customers": [' + ",".join(['"' + "x" * 1000 + '"'] * 10_000) + "]}"
    response = key_client.post("/api/v1/customers/bulk/", body, content_type="application/json")
    assert response.status_code == 200
    rejected = response.json()["rejected"]
    assert len(rejected) == 10_000
    assert rejected[0]["errors"] == {"non_field_errors": ["Must be a JSON object; got a string."]}


def test_ten_megabyte_malformed_json_is_a_clean_400(key_client):
    body = '{"customers": [' + "1," * (5 * 1024 * 1024)
    response = key_client.post("/api/v1/customers/bulk/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_body_over_the_cap_is_413_json(key_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    body = '{"customers": ["' + "x" * (2 * 1024 * 1024) + '"]}'
    response = key_client.post("/api/v1/customers/bulk/", body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"


def test_unknown_api_url_is_json_404(key_client):
    response = key_client.get("/api/v1/does-not-exist/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_wrong_method_is_405_json(key_client):
    response = key_client.delete("/api/v1/customers/")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def test_errors_carry_the_request_id(key_client):
    response = key_client.get("/api/v1/customers/NOPE/", HTTP_X_REQUEST_ID="req-12345678")
    assert response["X-Request-ID"] == "req-12345678"
    assert response.json()["request_id"] == "req-12345678"


@pytest.mark.parametrize(
    "error_class",
    [
        "predictions.services.ScoringInputError",
        "predictions.batch_jobs.common.BatchJobInputError",
        "predictions.tier_actions.TierActionError",
        "campaigns.services.common.CampaignError",
        "accounts.services.StaffMemberError",
    ],
)
def test_a_service_input_error_is_a_400_naming_the_field(error_class):
    """One InputError (churn_infra.errors), answered in one place: the API exception handler."""
    from django.utils.module_loading import import_string

    from churn_infra.errors import InputError
    from churn_infra.exceptions import api_exception_handler

    error = import_string(error_class)({"target_filters": ["Unknown filter: colour."]})
    assert isinstance(error, InputError)

    response = api_exception_handler(error, {"view": None})

    assert response.status_code == 400
    assert response.data["code"] == "invalid"
    assert response.data["errors"] == {"target_filters": ["Unknown filter: colour."]}
