"""The campaigns API: create, enrol, targets, follow-up updates, effectiveness, and who may see what."""

from __future__ import annotations

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuditLogEntry
from accounts.services import api_key_create
from campaigns.models import CampaignTarget, TargetGroup
from churn_infra import metrics
from tests.campaigns.factories import CampaignFactory, TargetFactory, hand_computed_campaign, scored_customer

pytestmark = pytest.mark.django_db

NEW_CAMPAIGN = {
    "name": "Fiber save",
    "goal": "Keep fiber customers on monthly contracts",
    "target_risk_levels": ["high", "critical"],
    "target_filters": {"contract_type": ["Month-to-month"]},
    "action": "discount",
    "discount_percent": 15,
    "control_share": 0.2,
}


@pytest.fixture
def other_client(other_department):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=api_key_create(department=other_department, name="finance-key")[1])
    return client


def test_create_list_and_get(key_client, staff_user):
    response = key_client.post("/api/v1/campaigns/", {**NEW_CAMPAIGN, "owner": "operator"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "draft"
    assert body["department"] == "retention"
    assert body["owner"] == "operator"
    assert body["target_rule"] == {
        "risk_levels": ["high", "critical"],
        "min_probability": None,
        "filters": {"contract_type": ["Month-to-month"]},
    }
    assert body["discount_percent"] == 15.0
    assert body["counts"] == {"targets": 0, "treatment": 0, "control": 0}
    listed = key_client.get("/api/v1/campaigns/").json()
    assert [c["id"] for c in listed["results"]] == [body["id"]]
    assert key_client.get(f"/api/v1/campaigns/{body['id']}/").json()["name"] == "Fiber save"


def test_create_errors_name_the_field(key_client):
    response = key_client.post(
        "/api/v1/campaigns/", {**NEW_CAMPAIGN, "discount_percent": None, "colour": 1}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {"colour": ["Unknown field."]}
    # no discount given and no targeted tier with an offer to default to
    response = key_client.post(
        "/api/v1/campaigns/", {**NEW_CAMPAIGN, "discount_percent": None, "target_risk_levels": ["critical"]},
        format="json",
    )
    assert response.status_code == 400
    assert "discount_percent" in response.json()["errors"]
    response = key_client.post("/api/v1/campaigns/", {**NEW_CAMPAIGN, "control_share": 0.95}, format="json")
    assert response.json()["errors"] == {"control_share": ["Must be between 0 and 0.9 (0.1 holds out 10%)."]}
    response = key_client.post("/api/v1/campaigns/", [1, 2], format="json")
    assert response.status_code == 400


def test_enrol_targets_and_update_a_follow_up(key_client, staff_user, colleague):
    for i in range(30):
        scored_customer(f"E-{i:02d}", 0.7 + i / 100)
    campaign_id = key_client.post("/api/v1/campaigns/", NEW_CAMPAIGN, format="json").json()["id"]
    response = key_client.post(
        f"/api/v1/campaigns/{campaign_id}/enrol/", {"assignees": ["operator", "bob"]}, format="json"
    )
    assert response.status_code == 200, response.json()
    result = response.json()
    assert result["enrolled"] == 30
    assert result["treatment"] + result["control"] == 30
    assert result["campaign"]["status"] == "active"
    assert result["campaign"]["counts"]["targets"] == 30
    control = key_client.get(f"/api/v1/campaigns/{campaign_id}/targets/", {"group": "control"}).json()
    assert control["count"] == result["control"]
    assert all(t["assignee"] is None and t["follow_up_status"] == "do_not_contact" for t in control["results"])
    mine = key_client.get(f"/api/v1/campaigns/{campaign_id}/targets/", {"assignee": "operator"}).json()
    target = mine["results"][0]
    assert target["qualifying_prediction"]["risk_level"] in {"high", "critical"}
    assert target["qualifying_prediction"]["prediction_id"]
    response = key_client.patch(
        f"/api/v1/campaign-targets/{target['id']}/",
        {"follow_up_status": "contacted", "note": "Left a voicemail.", "assignee": "bob", "due_date": "2030-01-31"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    updated = response.json()
    assert (updated["follow_up_status"], updated["assignee"], updated["due_date"]) == ("contacted", "bob", "2030-01-31")
    assert updated["notes"][0]["text"] == "Left a voicemail."
    assert updated["notes"][0]["author"].startswith("api-key:")
    assert AuditLogEntry.objects.filter(action="campaign_target.update", object_id=str(target["id"])).exists()


def test_target_update_errors(key_client, department):
    target = TargetFactory(campaign=CampaignFactory(department=department))
    url = f"/api/v1/campaign-targets/{target.pk}/"
    response = key_client.patch(url, {"follow_up_status": "maybe"}, format="json")
    assert response.status_code == 400
    assert "follow_up_status" in response.json()["errors"]
    response = key_client.patch(url, {"assignee": "nobody"}, format="json")
    assert response.json()["errors"] == {"assignee": ["No user named nobody."]}
    response = key_client.patch(url, {"outcome": "retained", "extra": 1}, format="json")
    assert response.json()["errors"] == {"extra": ["Unknown field."]}
    assert key_client.put(url, {"outcome": "retained"}, format="json").status_code == 405
    control = TargetFactory(campaign=target.campaign, group=TargetGroup.CONTROL)
    response = key_client.patch(
        f"/api/v1/campaign-targets/{control.pk}/", {"follow_up_status": "contacted"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"]["follow_up_status"] == [
        "Control-group customers are held out and are not contacted."
    ]


def test_effectiveness_on_the_hand_computed_example(key_client, staff_user, colleague, department):
    campaign = hand_computed_campaign(alice=staff_user, bob=colleague, department=department)
    response = key_client.get(f"/api/v1/campaigns/{campaign.pk}/effectiveness/")
    assert response.status_code == 200
    body = response.json()
    assert body["treatment"] == {
        "targets": 80,
        "outcomes_known": 70,
        "retained": 56,
        "churned": 14,
        "retention_rate": 0.8,
    }
    assert body["control"] == {
        "targets": 80,
        "outcomes_known": 80,
        "retained": 48,
        "churned": 32,
        "retention_rate": 0.6,
    }
    assert body["uplift"] == 0.2
    assert body["uplift_ci_95"] == {"low": 0.0524, "high": 0.3339}
    assert body["interval_method"] == "newcombe_hybrid_score"
    assert body["customers_saved"] == 16.0
    assert body["revenue_kept"] == 9600.0
    assert body["offer_cost"] == 300.0
    assert body["net_value"] == 9300.0
    assert body["progress"]["offer_accepted"] == 10
    per = {row["assignee"]: row for row in body["per_assignee"]}
    assert per["operator"]["treatment"]["retention_rate"] == 0.9
    assert per["operator"]["uplift"] == 0.3
    assert per["operator"]["customers_saved"] == 10.5  # 0.3 x 35
    assert per["operator"]["revenue_kept"] == 6300.0  # 10.5 x 50 x 12
    assert per["operator"]["offer_cost"] == 180.0  # 6 accepted x 50 x 20% x 3
    assert per["bob"]["treatment"]["retention_rate"] == 0.725
    assert per["bob"]["uplift"] == 0.125
    assert per["bob"]["customers_saved"] == 5.62  # 0.125 x 45 = 5.625, rounded half to even
    assert metrics.CAMPAIGN_UPLIFT.labels(campaign=str(campaign.pk))._value.get() == pytest.approx(0.2)


def test_a_recorded_outcome_through_the_api_settles_the_follow_up(
    key_client, department, django_capture_on_commit_callbacks
):
    customer = scored_customer("R-1", 0.9)
    target = TargetFactory(campaign=CampaignFactory(department=department), customer=customer)
    with django_capture_on_commit_callbacks(execute=True):
        response = key_client.post(
            "/api/v1/outcomes/",
            {"customer_id": "R-1", "churned": False, "observed_at": timezone.now().isoformat()},
            format="json",
        )
    assert response.status_code == 201
    target.refresh_from_db()
    assert (target.outcome, target.outcome_source) == ("retained", "recorded")


def test_another_departments_key_sees_nothing(other_client, department):
    campaign = CampaignFactory(department=department)
    target = TargetFactory(campaign=campaign)
    assert other_client.get("/api/v1/campaigns/").json()["count"] == 0
    for method, url in [
        ("get", f"/api/v1/campaigns/{campaign.pk}/"),
        ("post", f"/api/v1/campaigns/{campaign.pk}/enrol/"),
        ("post", f"/api/v1/campaigns/{campaign.pk}/close/"),
        ("get", f"/api/v1/campaigns/{campaign.pk}/targets/"),
        ("get", f"/api/v1/campaigns/{campaign.pk}/effectiveness/"),
        ("get", f"/api/v1/campaign-targets/{target.pk}/"),
        ("patch", f"/api/v1/campaign-targets/{target.pk}/"),
    ]:
        response = getattr(other_client, method)(url, {}, format="json")
        assert response.status_code == 404, (method, url)
        assert response.json()["code"] == "not_found"
    assert CampaignTarget.objects.get(pk=target.pk).follow_up_status == "to_do"


def test_scopes_and_authentication(department, api_client):
    read_only = APIClient()
    read_only.credentials(HTTP_X_API_KEY=api_key_create(department=department, name="ro", scopes=["customers:read"])[1])
    campaign = CampaignFactory(department=department)
    assert read_only.get(f"/api/v1/campaigns/{campaign.pk}/effectiveness/").status_code == 200
    response = read_only.post("/api/v1/campaigns/", NEW_CAMPAIGN, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "missing_scope"
    assert read_only.post(f"/api/v1/campaigns/{campaign.pk}/enrol/", {}, format="json").status_code == 403
    assert api_client.get("/api/v1/campaigns/").status_code == 401
