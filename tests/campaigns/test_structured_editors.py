"""Operators edit targeting rules, playbooks and column mappings as lines, not raw JSON."""

from __future__ import annotations

import pytest

from campaigns.admin import CampaignAdminForm
from churn_infra.form_fields import LinesListField, MappingField
from tests.campaigns.factories import CampaignFactory

pytestmark = pytest.mark.django_db


def test_mapping_lines_round_trip_and_name_the_bad_line():
    field = MappingField()
    assert field.clean("cust_id = customer_id\nsegment =\n\nchurn_flag = churned") == {
        "cust_id": "customer_id", "segment": "", "churn_flag": "churned",
    }  # fmt: skip
    assert field.prepare_value({"a": "b", "c": ""}) == "a = b\nc ="
    assert field.clean('{"a": "b"}') == {"a": "b"}  # JSON is still accepted
    with pytest.raises(Exception, match="Line 2"):
        field.clean("a = b\nno separator here")


def test_lines_list_field():
    field = LinesListField(max_items=2)
    assert field.clean("Call today\n\nOffer 15%") == ["Call today", "Offer 15%"]
    with pytest.raises(Exception, match="At most 2 lines"):
        field.clean("a\nb\nc")


def test_the_campaign_admin_form_types_and_checks_the_targeting_lines(department):
    campaign = CampaignFactory(department=department)
    data = {
        "department": department.pk, "name": campaign.name, "action": "discount", "discount_percent": "15",
        "control_share": "0.1", "start_date": "2026-12-01", "status": "draft", "horizon_months": 12,
        "offer_months": 3, "follow_up_days": 7, "selection": "threshold", "target_risk_levels": '["high"]',
        "projection": "{}",
        "target_filters": "contract_type = Month-to-month, One year\nmax_monthly_charges = 80\nrisk_increased = yes",
        "playbook": "0: Call\n2: Offer email",
    }  # fmt: skip
    form = CampaignAdminForm(data, instance=campaign)

    assert form.is_valid(), form.errors
    assert form.cleaned_data["target_filters"] == {
        "contract_type": ["Month-to-month", "One year"], "max_monthly_charges": 80, "risk_increased": True,
    }  # fmt: skip
    assert form.cleaned_data["playbook"] == [{"day": 0, "step": "Call"}, {"day": 2, "step": "Offer email"}]

    bad = CampaignAdminForm({**data, "target_filters": "contract_type = Weekly"}, instance=campaign)
    assert not bad.is_valid()
    assert "contract_type" in str(bad.errors["target_filters"])
