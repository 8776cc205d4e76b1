"""The operator admin: useful lists and filters, bulk assignment, enrol and close through the services."""

from __future__ import annotations

import pytest

from accounts.models import AuditLogEntry
from campaigns.models import CampaignTarget, TargetGroup
from tests.campaigns.factories import CampaignFactory, TargetFactory, scored_customer

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(client, admin_user):
    client.force_login(admin_user)
    return client


def test_lists_and_filters_render(admin_client_, department, staff_user):
    campaign = CampaignFactory(department=department, status="active")
    TargetFactory(campaign=campaign, assignee=staff_user)
    for url in [
        "/admin/campaigns/retentioncampaign/",
        "/admin/campaigns/retentioncampaign/?status__exact=active",
        f"/admin/campaigns/retentioncampaign/{campaign.pk}/change/",
        "/admin/campaigns/campaigntarget/",
        "/admin/campaigns/campaigntarget/?follow_up_status__exact=to_do&group__exact=treatment",
        f"/admin/campaigns/campaigntarget/{CampaignTarget.objects.get().pk}/change/",
    ]:
        assert admin_client_.get(url).status_code == 200, url


def test_bulk_assignment_action(admin_client_, department, colleague):
    campaign = CampaignFactory(department=department, status="active")
    treated = [TargetFactory(campaign=campaign) for _ in range(3)]
    control = TargetFactory(campaign=campaign, group=TargetGroup.CONTROL)
    response = admin_client_.post(
        "/admin/campaigns/campaigntarget/",
        {
            "action": "assign_selected",
            "assignee": colleague.pk,
            "_selected_action": [t.pk for t in [*treated, control]],
        },
        follow=True,
    )
    assert response.status_code == 200
    assert "3 follow-up(s) changed" in response.content.decode()
    assert CampaignTarget.objects.filter(assignee=colleague).count() == 3
    assert CampaignTarget.objects.get(pk=control.pk).assignee is None
    assert AuditLogEntry.objects.filter(action="campaign_target.assign").count() == 3


def test_enrol_and_close_actions(admin_client_, department):
    scored_customer("ADM-1", 0.9)
    campaign = CampaignFactory(department=department, control_share=0.0)
    admin_client_.post(
        "/admin/campaigns/retentioncampaign/", {"action": "enrol_selected", "_selected_action": [campaign.pk]}
    )
    campaign.refresh_from_db()
    assert campaign.status == "active"
    assert campaign.targets.count() == 1
    admin_client_.post(
        "/admin/campaigns/retentioncampaign/", {"action": "close_selected", "_selected_action": [campaign.pk]}
    )
    campaign.refresh_from_db()
    assert campaign.status == "closed"
