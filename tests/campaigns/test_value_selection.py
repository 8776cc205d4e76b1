"""Campaigns that choose whom to contact by expected value, on a hand-computed example.

Five high-risk customers; a 20% discount for 3 months, a 12-month horizon, a save rate of 25%
(the operator's prior), no control group. Expected value of contacting = p x 0.25 x m x 12 - 0.2 x m x 3:

    customer  p     m (monthly)  revenue p*.25*m*12   offer cost .2*m*3   value
    A         0.90  100          270.0                60                  210.0
    C         0.70  120          252.0                72                  180.0
    B         0.80   50          120.0                30                   90.0
    D         0.65   20           39.0                12                   27.0
    E         0.95   10           28.5                 6                   22.5

Budget of 2 offers: A and C; expected saves 0.25 x (0.9 + 0.7) = 0.4, revenue kept 522, offer cost 132,
net 390. The same two by risk alone would be E and A: saves 0.4625, revenue 298.5, cost 66, net 232.5.
Money budget of 150: A (60), C (132), B would pass 150 (162) so it is skipped, D (144), E (150).
"""

from __future__ import annotations

import csv
import io

import pytest

from accounts.models import AuditLogEntry
from campaigns import stats
from campaigns.models import CampaignTarget, TargetNote
from campaigns.selectors.audience import campaign_audience, projection_as_dict
from campaigns.selectors.effectiveness import campaign_effectiveness
from campaigns.services.lifecycle import campaign_enrol
from tests.campaigns.factories import CampaignFactory, TargetFactory, hand_computed_campaign, scored_customer

pytestmark = pytest.mark.django_db

ROWS = {"A": (0.90, 100.0), "B": (0.80, 50.0), "C": (0.70, 120.0), "D": (0.65, 20.0), "E": (0.95, 10.0)}


@pytest.fixture
def value_campaign(department):
    for name, (p, m) in ROWS.items():
        scored_customer(f"EV-{name}", p, monthly_charges=m, total_charges=m * 12)
    return CampaignFactory(
        department=department, target_risk_levels=["high", "critical"], discount_percent=20, offer_months=3,
        horizon_months=12, control_share=0.0, save_rate_prior=0.25, selection="value", budget_offers=2,
    )  # fmt: skip


def _ids(audience) -> list[str]:
    return [c.customer_id for c, _ in audience.chosen]


def test_contact_value_is_the_formula():
    value = stats.contact_value(probability=0.9, save_rate=0.25, monthly_charges=100, horizon_months=12, offer_cost=60)
    assert value == pytest.approx(210.0)


def test_value_selection_with_an_offer_budget_picks_the_best_expected_value(value_campaign):
    preview = projection_as_dict(campaign_audience(campaign=value_campaign))

    assert preview["matched"] == 5
    assert preview["selected"] == 2
    assert _ids(campaign_audience(campaign=value_campaign)) == ["EV-A", "EV-C"]
    assert preview["expected_saves"] == pytest.approx(0.4)
    assert preview["expected_revenue_kept"] == pytest.approx(522.0)
    assert preview["offer_cost"] == pytest.approx(132.0)
    assert preview["expected_net"] == pytest.approx(390.0)
    assert preview["save_rate_source"] == "campaign prior"
    assert preview["expected_saves_ci95"] is None  # a prior has no interval


def test_by_risk_alone_the_same_budget_keeps_less(value_campaign):
    value_campaign.selection, value_campaign.budget_offers = "threshold", None
    value_campaign.save()

    audience = campaign_audience(campaign=value_campaign, limit=2)
    preview = projection_as_dict(audience)

    assert _ids(audience) == ["EV-E", "EV-A"]
    assert preview["expected_saves"] == pytest.approx(0.4625)
    assert preview["expected_net"] == pytest.approx(232.5)


def test_a_money_budget_skips_the_offer_that_no_longer_fits(value_campaign):
    value_campaign.budget_offers, value_campaign.budget_money = None, 150
    value_campaign.save()

    audience = campaign_audience(campaign=value_campaign)

    assert _ids(audience) == ["EV-A", "EV-C", "EV-D", "EV-E"]
    assert projection_as_dict(audience)["offer_cost"] == pytest.approx(150.0)


def test_enrolment_takes_the_previewed_audience_and_keeps_the_projection(value_campaign, staff_actor):
    result = campaign_enrol(campaign_id=value_campaign.pk, actor=staff_actor)

    assert result.enrolled == 2
    targets = CampaignTarget.objects.filter(campaign=value_campaign)
    enrolled = set(targets.values_list("customer__customer_id", flat=True))
    assert enrolled == {"EV-A", "EV-C"}
    value_campaign.refresh_from_db()
    assert value_campaign.projection["expected_net"] == pytest.approx(390.0)
    assert value_campaign.projection["enrolments"] == 1


def test_the_measured_uplift_replaces_the_prior_with_its_interval(staff_user, department):
    from tests.factories import UserFactory

    campaign = hand_computed_campaign(alice=staff_user, bob=UserFactory(username="bob", department=department),
                                      department=department)
    campaign.save_rate_prior = 0.05
    campaign.target_risk_levels = ["high", "critical"]
    campaign.save()
    scored_customer("NEW-1", 0.9, monthly_charges=100.0, total_charges=1200.0)

    preview = projection_as_dict(campaign_audience(campaign=campaign))

    assert preview["save_rate_source"] == "measured uplift"
    assert preview["save_rate"] == pytest.approx(0.2)
    low, high = preview["expected_saves_ci95"]
    assert low == pytest.approx(0.0524 * 0.9, abs=1e-3)
    assert high == pytest.approx(0.3339 * 0.9, abs=1e-3)
    assert preview["small_sample"] is False


def test_effectiveness_gives_intervals_for_saved_and_revenue(staff_user, department):
    from tests.factories import UserFactory

    campaign = hand_computed_campaign(alice=staff_user, bob=UserFactory(username="bob", department=department),
                                      department=department)

    effect = campaign_effectiveness(campaign=campaign).effect

    # uplift 0.20 (0.0524..0.3339) x 80 treated; revenue x mean bill 50 x 12 months
    assert effect.saved_low == pytest.approx(0.0524 * 80, abs=0.01)
    assert effect.saved_high == pytest.approx(0.3339 * 80, abs=0.01)
    assert effect.revenue_low == pytest.approx(0.0524 * 80 * 600, abs=5)
    assert effect.revenue_high == pytest.approx(0.3339 * 80 * 600, abs=5)
    assert effect.small_sample is False


def test_a_small_control_group_is_flagged(department, staff_user):
    campaign = CampaignFactory(department=department, status="active")
    for i in range(5):
        TargetFactory(campaign=campaign, customer=scored_customer(f"SM-T{i}", 0.7), outcome="retained")
        TargetFactory(campaign=campaign, customer=scored_customer(f"SM-C{i}", 0.7), group="control",
                      outcome="churned")

    assert campaign_effectiveness(campaign=campaign).effect.small_sample is True


def test_preview_over_the_api_changes_nothing(value_campaign, key_client):
    before = AuditLogEntry.objects.count()

    response = key_client.post(f"/api/v1/campaigns/{value_campaign.pk}/preview/", {}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("matched", "selected", "expected_saves", "expected_revenue_kept", "offer_cost",
                                  "expected_net")} == {
        "matched": 5, "selected": 2, "expected_saves": 0.4, "expected_revenue_kept": 522.0, "offer_cost": 132.0,
        "expected_net": 390.0,
    }  # fmt: skip
    assert not CampaignTarget.objects.filter(campaign=value_campaign).exists()
    assert AuditLogEntry.objects.count() == before


def test_a_budget_needs_value_selection(key_client):
    response = key_client.post("/api/v1/campaigns/", {
        "name": "x", "action": "personal_call", "target_risk_levels": ["high"], "budget_offers": 5,
    }, format="json")  # fmt: skip

    assert response.status_code == 400
    assert "selection" in response.json()["errors"]


def test_targets_download_as_csv_with_formulas_neutralised(key_client, department):
    campaign = CampaignFactory(department=department, status="active")
    risky = TargetFactory(campaign=campaign, customer=scored_customer("CSV-1", 0.7))
    TargetNote.objects.create(target=risky, author_label="alice", text='=HYPERLINK("http://x","click")')
    TargetFactory(campaign=campaign, customer=scored_customer("CSV-2", 0.8))

    response = key_client.get(f"/api/v1/campaigns/{campaign.pk}/targets/?format=csv")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {r["customer_id"] for r in rows} == {"CSV-1", "CSV-2"}
    assert {r["last_note"] for r in rows} == {"'=HYPERLINK(\"http://x\",\"click\")", ""}
    assert {r["monthly_charges"] for r in rows} <= {str(t.monthly_charges) for t in CampaignTarget.objects.all()}
