"""Issue 10, point 5: the tier's offer is real. Predictions carry it, campaigns default to it, and
tiers are read and edited over the API and the admin through one audited service."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.models import AuditLogEntry
from accounts.services import api_key_create
from campaigns.models import CampaignAction
from campaigns.services.common import CampaignError
from campaigns.services.lifecycle import campaign_create
from campaigns.services.spec import CampaignSpec
from churn_ml.scoring.factors import Factor
from modelregistry import loader
from predictions.models import Prediction, RiskTierAction
from predictions.tier_actions import forget_tier_actions
from tests.factories import record

pytestmark = pytest.mark.django_db

TIERS = "/api/v1/tiers/"


@pytest.fixture
def tier_client(department):
    _, key = api_key_create(department=department, name="tiers", scopes=["tiers:manage"])
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)
    return client


def scored_at(monkeypatch, p: float) -> None:
    scorer = loader.active_model().scorer
    monkeypatch.setattr(type(scorer), "score_one", lambda self, rec, k=5: (p, [Factor("contract_type", 0.5)]))


def test_predictions_carry_the_tiers_offer_or_null(key_client, active_version, monkeypatch):
    scored_at(monkeypatch, 0.7)  # high: 15% for 3 months by default
    high = key_client.post("/api/v1/predictions/", record(), format="json").json()
    assert high["offer"] == {"discount_percent": 15.0, "months": 3}
    assert Prediction.objects.get(prediction_id=high["prediction_id"]).offer == high["offer"]
    assert key_client.get(f"/api/v1/predictions/{high['prediction_id']}/").json()["offer"] == high["offer"]
    scored_at(monkeypatch, 0.1)  # low: no offer
    assert key_client.post("/api/v1/predictions/", record(), format="json").json()["offer"] is None


def test_batch_predictions_carry_the_offer(key_client, active_version):
    items = [record(customer_id=f"O-{i}", tenure_months=1 + 20 * i, total_charges=85.0 * (1 + 20 * i))
             for i in range(4)]
    body = key_client.post("/api/v1/predictions/batch/", {"customers": items}, format="json").json()
    offers = {p["risk_level"]: p["offer"] for p in body["predictions"]}
    for level, offer in offers.items():
        assert offer == ({"discount_percent": 15.0, "months": 3} if level == "high" else None)
    stored = {str(p.prediction_id): p.offer for p in Prediction.objects.all()}
    assert stored == {p["prediction_id"]: p["offer"] for p in body["predictions"]}


def test_tiers_are_read_and_edited_over_the_api_with_an_audit_entry(tier_client, key_client, active_version,
                                                                   monkeypatch):
    listed = tier_client.get(TIERS)
    assert listed.status_code == 200
    assert [t["risk_level"] for t in listed.json()] == ["low", "medium", "high", "critical"]
    assert tier_client.get(f"{TIERS}high/").json()["offer"] == {"discount_percent": 15.0, "months": 3}

    response = tier_client.patch(f"{TIERS}critical/", {"offer_discount_percent": 25, "offer_months": 6}, format="json")
    assert response.status_code == 200
    assert response.json()["offer"] == {"discount_percent": 25.0, "months": 6}
    entry = AuditLogEntry.objects.get(action="tier.update")
    assert entry.object_id == "critical"
    assert entry.details["changes"]["offer_discount_percent"] == {"from": None, "to": 25.0}
    assert entry.actor_api_key_id is not None
    # the next prediction at that level carries the new offer
    scored_at(monkeypatch, 0.95)
    assert key_client.post("/api/v1/predictions/", record(), format="json").json()["offer"] == {
        "discount_percent": 25.0, "months": 6}

    # removing the discount removes its months
    tier_client.patch(f"{TIERS}critical/", {"offer_discount_percent": None}, format="json")
    tier = RiskTierAction.objects.get(risk_level="critical")
    assert (tier.offer_discount_percent, tier.offer_months) == (None, None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"offer_discount_percent": 150, "offer_months": 3}, "offer_discount_percent"),
        ({"offer_discount_percent": "lots"}, "offer_discount_percent"),
        ({"offer_discount_percent": "NaN", "offer_months": 3}, "offer_discount_percent"),
        ({"offer_discount_percent": 10}, "offer_months"),
        ({"offer_months": 0}, "offer_months"),
        ({"recommendations": ["ok", ""]}, "recommendations"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_tier_edit_is_a_field_error_and_writes_nothing(tier_client, body, field):
    level = "low"  # no offer today
    response = tier_client.patch(f"{TIERS}{level}/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not AuditLogEntry.objects.filter(action="tier.update").exists()


def test_tiers_need_the_tiers_scope(key_client):
    # the default key scopes do not include tiers:manage
    assert key_client.get(TIERS).status_code == 403
    assert key_client.patch(f"{TIERS}high/", {"offer_months": 4}, format="json").status_code == 403
    assert RiskTierAction.objects.get(risk_level="high").offer_months == 3


def test_an_admin_tier_edit_goes_through_the_service_and_is_audited(client, admin_user):
    client.force_login(admin_user)
    tier = RiskTierAction.objects.get(risk_level="medium")
    url = f"/admin/predictions/risktieraction/{tier.pk}/change/"
    assert client.get(url).status_code == 200
    response = client.post(url, {
        "recommendations": '["Call within a week."]', "offer_discount_percent": "10", "offer_months": "2",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    tier.refresh_from_db()
    assert (tier.recommendations, float(tier.offer_discount_percent), tier.offer_months) == (
        ["Call within a week."], 10.0, 2)
    entry = AuditLogEntry.objects.get(action="tier.update")
    assert entry.actor_user_id == admin_user.pk
    assert set(entry.details["changes"]) == {"recommendations", "offer_discount_percent", "offer_months"}
    # the service's rules show on the form
    refused = client.post(url, {"recommendations": '["x"]', "offer_discount_percent": "10", "offer_months": ""})
    assert refused.status_code == 200
    assert "A discount needs the months it is given for." in refused.content.decode()
    assert AuditLogEntry.objects.filter(action="tier.update").count() == 1


def test_a_discount_campaign_for_a_tier_takes_its_offer(staff_user, department):
    from accounts.services import actor_for_user

    actor = actor_for_user(staff_user)
    campaign = campaign_create(actor=actor, spec=CampaignSpec(
        name="Save the high risk", action=CampaignAction.DISCOUNT, target_risk_levels=["medium", "high"]))
    assert (float(campaign.discount_percent), campaign.offer_months) == (15.0, 3)
    # an explicit discount wins over the tier's
    chosen = campaign_create(actor=actor, spec=CampaignSpec(
        name="Deeper", action=CampaignAction.DISCOUNT, target_risk_levels=["high"], discount_percent=30,
        offer_months=12))
    assert (float(chosen.discount_percent), chosen.offer_months) == (30.0, 12)
    # the tier's edit reaches the next campaign
    RiskTierAction.objects.filter(risk_level="critical").update(offer_discount_percent=40, offer_months=6)
    forget_tier_actions()
    urgent = campaign_create(actor=actor, spec=CampaignSpec(
        name="Urgent", action=CampaignAction.DISCOUNT, target_risk_levels=["high", "critical"]))
    assert (float(urgent.discount_percent), urgent.offer_months) == (40.0, 6)
    # a tier without an offer gives no default
    with pytest.raises(CampaignError) as refused:
        campaign_create(actor=actor, spec=CampaignSpec(
            name="Low", action=CampaignAction.DISCOUNT, target_risk_levels=["low"]))
    assert "discount_percent" in refused.value.errors


def test_the_staff_page_shows_the_offer_the_prediction_carries(key_client, active_version, monkeypatch, staff_user):
    from django.test import Client

    from tests.factories import CustomerFactory

    CustomerFactory(customer_id="OF-1")
    scored_at(monkeypatch, 0.7)
    key_client.post("/api/v1/predictions/", {"customer_id": "OF-1"}, format="json")
    client = Client()
    client.force_login(staff_user)
    assert "Offer: 15% discount for 3 months." in client.get("/staff/customers/OF-1/").content.decode()
