"""Bulk work on follow-ups, saved views and CSV exports from the staff pages."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest

from accounts.models import AuditLogEntry
from campaigns.models import CampaignTarget, SavedView
from tests.campaigns.factories import CampaignFactory, TargetFactory, scored_customer

pytestmark = pytest.mark.django_db


@pytest.fixture
def work(department, staff_user):
    campaign = CampaignFactory(department=department, status="active", name="Bulk")
    treated = [
        TargetFactory(campaign=campaign, customer=scored_customer(f"BLK-{i}", 0.7 + i / 100), assignee=None)
        for i in range(4)
    ]
    control = TargetFactory(campaign=campaign, customer=scored_customer("BLK-C", 0.9), group="control")
    return campaign, treated, control


def test_bulk_assign_and_reschedule_the_selected_follow_ups(client, staff_user, colleague, work):
    _, treated, _ = work
    client.force_login(staff_user)
    chosen = [treated[0].pk, treated[1].pk]

    response = client.post("/staff/follow-ups/bulk/", {
        "scope": "selected", "targets": chosen, "assignee": str(colleague.pk), "due_date": "2027-01-15",
        "follow_up_status": "contacted", "query": "assignee=unassigned",
    })  # fmt: skip

    assert response.status_code == 302
    changed = CampaignTarget.objects.filter(pk__in=chosen)
    assert {(t.assignee_id, t.due_date, t.follow_up_status) for t in changed} == {
        (colleague.pk, date(2027, 1, 15), "contacted")
    }
    assert all(t.contacted_at is not None for t in changed)
    untouched = CampaignTarget.objects.get(pk=treated[2].pk)
    assert (untouched.assignee_id, untouched.follow_up_status) == (None, "to_do")
    audited = AuditLogEntry.objects.filter(action__in=["campaign_target.assign", "campaign_target.bulk_update"])
    assert {int(e.object_id) for e in audited} == set(chosen)


def test_bulk_change_of_a_whole_filter_leaves_the_control_group_alone(client, staff_user, colleague, work):
    _, treated, control = work
    client.force_login(staff_user)

    response = client.post("/staff/follow-ups/bulk/", {
        "scope": "filter", "assignee": str(colleague.pk), "query": "assignee=unassigned&status=open",
    }, follow=True)  # fmt: skip

    assert "Changed 4 of 4 follow-ups." in response.content.decode()
    assert set(CampaignTarget.objects.filter(assignee=colleague).values_list("pk", flat=True)) == {
        t.pk for t in treated
    }
    control.refresh_from_db()
    assert control.assignee_id is None


def test_another_departments_follow_ups_cannot_be_changed_in_bulk(client, outsider, work):
    _, treated, _ = work
    client.force_login(outsider)

    response = client.post("/staff/follow-ups/bulk/", {
        "scope": "selected", "targets": [treated[0].pk], "follow_up_status": "contacted",
    })  # fmt: skip

    assert response.status_code == 404
    assert CampaignTarget.objects.get(pk=treated[0].pk).follow_up_status == "to_do"


def test_built_in_and_saved_views(client, staff_user, work):
    client.force_login(staff_user)
    page = client.get("/staff/follow-ups/").content.decode()
    assert "My overdue" in page
    assert "Unassigned high risk" in page

    client.post("/staff/views/", {"name": "Fiber, mine", "query": "assignee=me&risk_level=high"})

    view = SavedView.objects.get(user=staff_user)
    assert (view.name, view.query) == ("Fiber, mine", "assignee=me&risk_level=high")
    assert "Fiber, mine" in client.get("/staff/follow-ups/").content.decode()
    unassigned = client.get("/staff/follow-ups/?assignee=unassigned&status=open&risk_level=high_critical&sort=risk")
    assert unassigned.content.decode().count('class="card target') == 4
    assert AuditLogEntry.objects.filter(action="saved_view.save").exists()


def test_follow_ups_export_follows_the_filter_and_neutralises_cells(client, staff_user, work):
    client.force_login(staff_user)

    response = client.get("/staff/follow-ups/export.csv?assignee=unassigned")

    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert response["Content-Disposition"].startswith("attachment;")
    assert sorted(r["customer_id"] for r in rows) == ["BLK-0", "BLK-1", "BLK-2", "BLK-3"]


def test_campaign_exports_per_assignee(client, staff_user, work):
    campaign, _, _ = work
    client.force_login(staff_user)

    response = client.get(f"/staff/campaigns/{campaign.pk}/assignees.csv")

    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["assignee", "treated", "outcomes_known"]
    assert rows[1][0] == "(unassigned)"


def test_the_customer_timeline_puts_scores_events_outcomes_campaign_steps_and_notes_in_order(
    client, staff_user, staff_actor, work
):
    from datetime import timedelta

    from django.utils import timezone

    from campaigns.services.follow_ups import campaign_target_update
    from customers.models import CustomerEvent, Outcome

    _, treated, _ = work
    target = treated[0]
    customer = target.customer
    CustomerEvent.objects.create(stream="crm", entry_id="1-0", event_type="payment.failed", status="applied",
                                 customer=customer, customer_key=customer.customer_id,
                                 occurred_at=timezone.now() - timedelta(hours=2), data={"amount": 42})
    campaign_target_update(target_id=target.pk, actor=staff_actor, follow_up_status="contacted", note="Called her")
    Outcome.objects.create(customer=customer, churned=False, observed_at=timezone.now() + timedelta(minutes=1),
                           source="api")
    client.force_login(staff_user)

    body = client.get(f"/staff/customers/{customer.customer_id}/").content.decode()

    timeline = body[body.index('data-role="timeline"'):]
    first = {k: timeline.index(f'data-kind="{k}"') for k in ("outcome", "note", "campaign", "event", "prediction")}
    # newest first: the outcome (a minute ahead), the note and status change (now), the score, the event (2 h ago)
    assert first["outcome"] < min(first["note"], first["campaign"])
    assert max(first["note"], first["campaign"]) < first["prediction"] < first["event"]
    assert "Payment failed" in timeline
    assert "follow up status to_do → contacted" in timeline
    assert "Churn probability over time" in body


def test_a_playbook_step_by_step_with_the_next_step_on_each_follow_up(client, staff_user, department, key_client):
    from campaigns.models import RetentionCampaign

    client.force_login(staff_user)
    response = client.post("/staff/campaigns/new/", {
        "name": "Playbook", "action": "discount", "discount_percent": "15", "target_risk_levels": ["high"],
        "control_share": "0", "start_date": "2026-12-01", "horizon_months": "12", "offer_months": "3",
        "follow_up_days": "7", "playbook": "0: Call\n2: Offer email\n14: Check-in",
    })  # fmt: skip
    campaign = RetentionCampaign.objects.get(name="Playbook")
    assert response.status_code == 302
    assert campaign.playbook == [{"day": 0, "step": "Call"}, {"day": 2, "step": "Offer email"},
                                 {"day": 14, "step": "Check-in"}]  # fmt: skip
    campaign.status = "active"
    campaign.save()
    target = TargetFactory(campaign=campaign, customer=scored_customer("PB-1", 0.7), assignee=staff_user)

    page = client.get("/staff/follow-ups/").content.decode()
    assert "Next step 1 of 3: <strong>Call</strong>" in page

    client.post(f"/staff/follow-ups/{target.pk}/step/", {"step": "0"}, HTTP_HX_REQUEST="true")
    card = client.post(f"/staff/follow-ups/{target.pk}/step/", {"step": "0"}, HTTP_HX_REQUEST="true")  # a 2nd click

    target.refresh_from_db()
    assert target.steps_done == 1  # the repeated click ticked nothing more
    assert target.follow_up_status == "contacted"
    assert "Next step 2 of 3: <strong>Offer email</strong>" in card.content.decode()
    api = key_client.get(f"/api/v1/campaign-targets/{target.pk}/").json()
    assert api["next_step"]["step"] == "Offer email"
    assert AuditLogEntry.objects.filter(action="campaign_target.step_done", object_id=str(target.pk)).count() == 1


def test_a_campaign_without_a_playbook_follows_its_actions_default(key_client, department):
    campaign = CampaignFactory(department=department, action="personal_call", discount_percent=None)

    body = key_client.get(f"/api/v1/campaigns/{campaign.pk}/").json()

    assert [s["step"] for s in body["playbook"]] == ["Personal call from customer success", "Follow-up call"]
