"""Inputs that used to answer 500: offsets PostgreSQL refuses, and undocumented format-suffix routes."""

from __future__ import annotations

import pytest

from tests.campaigns.factories import CampaignFactory, PredictionFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("path", "field"),
    [("/api/v1/predictions/", "since"), ("/api/v1/predictions/", "until"), ("/api/v1/customers/", "updated_since")],
)
@pytest.mark.parametrize("offset", ["+18:00", "-16:00", "+23:59"])
def test_a_date_with_an_offset_postgresql_cannot_store_is_a_400_naming_the_field(key_client, path, field, offset):
    PredictionFactory()
    response = key_client.get(path, {field: f"2025-01-01T00:00:00{offset}"})
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid"
    assert "out of range" in " ".join(body["errors"][field])


def test_offsets_postgresql_accepts_still_filter(key_client):
    PredictionFactory()
    assert key_client.get("/api/v1/predictions/", {"since": "2000-01-01T00:00:00+15:59"}).json()["count"] == 1
    assert key_client.get("/api/v1/predictions/", {"since": "2999-01-01T00:00:00-15:59"}).json()["count"] == 0
    assert key_client.get("/api/v1/customers/", {"updated_since": "2000-01-01T00:00:00+14:00"}).status_code == 200


@pytest.mark.parametrize(
    "path",
    ["/api/v1/campaigns/{id}/targets.json", "/api/v1/campaigns/{id}.json", "/api/v1/campaigns.json",
     "/api/v1/campaigns/{id}/effectiveness.json", "/api/v1/campaign-targets.json"],
)
def test_format_suffix_routes_are_gone(key_client, department, path):
    campaign = CampaignFactory(department=department)
    assert key_client.get(f"/api/v1/campaigns/{campaign.pk}/targets/").status_code == 200
    response = key_client.get(path.format(id=campaign.pk))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    "path", ["/api/v1/campaigns/0/targets/?format=csv", "/api/v1/predictions/jobs/0/results/?format=csv"]
)
def test_errors_are_json_where_csv_was_asked_for(key_client, path):
    response = key_client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == "not_found"
