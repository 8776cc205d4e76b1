"""The staff pages: who gets in, what they show, the one-step follow-up form, and their query counts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from accounts.models import AuditLogEntry
from campaigns.models import CampaignStatus, CampaignTarget, RetentionCampaign, TargetGroup, TargetNote
from tests.campaigns.factories import (
    CampaignFactory,
    PredictionFactory,
    TargetFactory,
    hand_computed_campaign,
    scored_customer,
)
from tests.factories import CustomerFactory, UserFactory, record

pytestmark = pytest.mark.django_db

PAGES = ["/staff/", "/staff/follow-ups/", "/staff/campaigns/", "/staff/campaigns/new/", "/staff/customers/C-1/"]


@pytest.fixture
def staff_client(staff_user) -> Client:
    client = Client()
    client.force_login(staff_user)
    return client


@pytest.mark.parametrize("url", PAGES)
def test_anonymous_visitors_are_sent_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(f"/accounts/login/?next={url}")


def test_non_staff_users_are_sent_to_login(client, user):
    client.force_login(user)
    response = client.get("/staff/", follow=True)
    assert response.redirect_chain[0][0].startswith("/accounts/login/")
    assert "has no access to the staff pages" in response.content.decode()


def test_staff_group_members_get_in_and_login_works(client, department):
    person = UserFactory(username="grace", department=department)
    person.groups.add(Group.objects.get_or_create(name="staff")[0])
    page = client.get("/accounts/login/?next=/staff/")
    assert page.status_code == 200
    assert b'name="viewport"' in page.content
    response = client.post(
        "/accounts/login/", {"username": "grace", "password": "correct-horse-battery", "next": "/staff/"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/staff/"
    assert client.get("/staff/").status_code == 200
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/staff/").status_code == 302


def test_dashboard_shows_risk_levels_new_high_risk_open_work_and_results(
    staff_client, staff_user, colleague, department
):
    for i, p in enumerate([0.1, 0.4, 0.65, 0.9, 0.95]):
        scored_customer(f"D-{i}", p)
    PredictionFactory(customer_id="D-4", churn_probability=0.2, created_at=timezone.now() - timedelta(days=2))
    CustomerFactory(customer_id="D-unscored")
    campaign = hand_computed_campaign(alice=staff_user, bob=colleague, department=department)
    body = staff_client.get("/staff/").content.decode()
    assert "Customers by risk level" in body
    assert "Critical: 2" in body  # D-3 and D-4 (D-4's latest prediction is today's 0.95)
    assert "High: 1" in body
    assert "Low: 1" in body
    assert "Unscored: " in body
    assert "New high and critical risk customers" in body
    assert '<svg class="chart"' in body
    assert campaign.name in body
    assert "+20.0 pts" in body
    # open follow-ups: of operator's 35 treatment targets, 6 accepted the offer and 29 are "contacted" (still open)
    assert 'data-role="mine">29<' in body


def test_my_follow_ups_filters_and_sorts(staff_client, staff_user, colleague, department):
    campaign = CampaignFactory(department=department, status=CampaignStatus.ACTIVE)
    today = timezone.localdate()
    overdue = TargetFactory(
        campaign=campaign,
        assignee=staff_user,
        qualifying_probability=0.61,
        customer=CustomerFactory(customer_id="F-OVERDUE"),
        due_date=today - timedelta(days=2),
    )
    riskiest = TargetFactory(
        campaign=campaign,
        assignee=staff_user,
        qualifying_probability=0.97,
        qualifying_risk_level="critical",
        customer=CustomerFactory(customer_id="F-RISKY"),
    )
    TargetFactory(campaign=campaign, assignee=colleague, customer=CustomerFactory(customer_id="F-BOBS"))
    TargetFactory(
        campaign=campaign,
        assignee=staff_user,
        follow_up_status="offer_accepted",
        customer=CustomerFactory(customer_id="F-DONE"),
    )
    body = staff_client.get("/staff/follow-ups/").content.decode()
    assert "F-OVERDUE" in body
    assert "F-RISKY" in body
    assert "F-BOBS" not in body
    assert "F-DONE" not in body
    assert body.index("F-OVERDUE") < body.index("F-RISKY")  # due date first by default
    by_risk = staff_client.get("/staff/follow-ups/?sort=risk").content.decode()
    assert by_risk.index("F-RISKY") < by_risk.index("F-OVERDUE")
    assert "F-RISKY" not in staff_client.get("/staff/follow-ups/?due=overdue").content.decode()
    assert "F-OVERDUE" not in staff_client.get("/staff/follow-ups/?risk_level=critical").content.decode()
    assert "F-DONE" in staff_client.get("/staff/follow-ups/?status=offer_accepted").content.decode()
    assert "F-BOBS" in staff_client.get("/staff/follow-ups/?assignee=all").content.decode()
    assert "F-RISKY" in staff_client.get("/staff/follow-ups/?q=f-ri").content.decode()
    assert "F-OVERDUE" not in staff_client.get("/staff/follow-ups/?q=f-ri").content.decode()
    assert overdue.pk
    assert riskiest.pk


def test_follow_up_update_in_one_step_without_javascript(staff_client, staff_user, colleague, department):
    target = TargetFactory(campaign=CampaignFactory(department=department, status="active"), assignee=staff_user)
    response = staff_client.post(
        f"/staff/follow-ups/{target.pk}/update/",
        {
            "follow_up_status": "offer_accepted",
            "outcome": "retained",
            "assignee": str(colleague.pk),
            "due_date": "2031-05-01",
            "note": "Accepted the offer on the phone.",
            "next": "/staff/follow-ups/",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == "/staff/follow-ups/"
    target.refresh_from_db()
    assert (target.follow_up_status, target.outcome, target.assignee) == ("offer_accepted", "retained", colleague)
    assert str(target.due_date) == "2031-05-01"
    assert TargetNote.objects.get(target=target).text == "Accepted the offer on the phone."
    entry = AuditLogEntry.objects.get(action="campaign_target.update")
    assert entry.actor_user == staff_user
    assert set(entry.details["changes"]) == {"follow_up_status", "outcome", "assignee", "due_date"}


def test_follow_up_update_with_htmx_returns_the_updated_card(staff_client, staff_user, department):
    target = TargetFactory(campaign=CampaignFactory(department=department, status="active"), assignee=staff_user)
    response = staff_client.post(
        f"/staff/follow-ups/{target.pk}/update/",
        {"follow_up_status": "contacted", "note": "Left a voicemail."},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith("<article")
    assert 'data-role="status">Contacted<' in body
    assert "Left a voicemail." in body
    assert "Saved." in body
    bad = staff_client.post(
        f"/staff/follow-ups/{target.pk}/update/", {"follow_up_status": "nonsense"}, HTTP_HX_REQUEST="true"
    )
    assert bad.status_code == 200
    assert "follow_up_status" in bad.content.decode()
    control = TargetFactory(campaign=target.campaign, group=TargetGroup.CONTROL)
    held_out = staff_client.post(
        f"/staff/follow-ups/{control.pk}/update/", {"follow_up_status": "contacted"}, HTTP_HX_REQUEST="true"
    )
    assert "held out" in held_out.content.decode()


def test_customer_page(staff_client, staff_user, department):
    customer = scored_customer("CUST-1", 0.86, contract_type="Month-to-month", tenure_months=3, total_charges=255.0)
    PredictionFactory(customer_id="CUST-1", churn_probability=0.45, created_at=timezone.now() - timedelta(days=10))
    target = TargetFactory(
        campaign=CampaignFactory(department=department, name="Autumn save", status="active"),
        customer=customer,
        assignee=staff_user,
    )
    TargetNote.objects.create(target=target, author=staff_user, author_label="user:operator", text="Prefers email.")
    body = staff_client.get("/staff/customers/CUST-1/").content.decode()
    assert "Customer CUST-1" in body
    assert "86% · Critical risk" in body
    assert "Contract (Month-to-month) raises the churn risk strongly" in body
    assert "Tenure (3 months) lowers the churn risk slightly" in body
    assert "Urgent personal call" in body or "Recommendation for critical risk." in body
    assert body.count('class="badge risk') >= 3  # header + two history rows
    assert "Autumn save" in body
    assert "Prefers email." in body
    assert f'id="target-{target.pk}"' in body
    assert staff_client.get("/staff/customers/NOPE/").status_code == 404
    assert staff_client.get("/staff/customers/?q=CUST").status_code == 302


TENURE_FACTOR = {
    "feature": "tenure_months", "impact": 1.21, "fields": ["tenure_months", "monthly_charges", "total_charges"],
    "label": "Tenure and charges to date",
}


def test_customer_page_words_factors_from_the_values_scored(staff_client):
    """History is worded with the record each prediction was scored with, not today's values."""
    customer = CustomerFactory(customer_id="CUST-2", contract_type="Two year", tenure_months=40, total_charges=2900.0)
    scored_with = {
        "customer_id": "CUST-2", "tenure_months": 1, "monthly_charges": 29.85, "total_charges": 29.85,
        "contract_type": "Month-to-month",
    }
    PredictionFactory(
        customer_id="CUST-2", churn_probability=0.89, inputs=scored_with,
        top_factors=[TENURE_FACTOR, {"feature": "contract_type", "impact": 0.83, "fields": ["contract_type"],
                                     "label": "Contract"}],
    )
    PredictionFactory(
        customer_id="CUST-2", churn_probability=0.2, inputs=None, created_at=timezone.now() - timedelta(days=30),
        top_factors=[{"feature": "contract_type", "impact": -1.1, "fields": ["contract_type"], "label": "Contract"}],
    )
    body = staff_client.get(f"/staff/customers/{customer.customer_id}/").content.decode()
    assert "Tenure and charges to date (1 month, $29.85 a month, $29.85 total) raises the churn risk strongly" in body
    assert "Contract (Month-to-month) raises the churn risk strongly" in body
    # the older prediction kept no inputs: worded with the customer's current values
    assert "Contract (Two year) lowers the churn risk strongly" in body
    assert "Tenure (" not in body


def test_a_scored_record_reads_the_way_the_model_moves(staff_client, key_client, active_version):
    """End to end: a one-month, month-to-month customer scored over the API is a high risk
    whose page says tenure and contract raise it, never that tenure lowers it."""
    CustomerFactory(customer_id="NEW-1", tenure_months=30, total_charges=2000.0, contract_type="Two year")
    scored = record(customer_id="NEW-1", tenure_months=1, total_charges=70.7, monthly_charges=70.7,
                    contract_type="Month-to-month", internet_service="Fiber optic")
    response = key_client.post("/api/v1/predictions/", scored, format="json")
    assert response.status_code == 201, response.content
    factors = {f["feature"]: f for f in response.json()["top_factors"]}
    assert factors["tenure_months"]["impact"] > 0
    assert factors["tenure_months"]["fields"] == ["tenure_months", "monthly_charges", "total_charges"]
    assert factors["contract_type"]["impact"] > 0
    body = staff_client.get("/staff/customers/NEW-1/").content.decode()
    assert "Tenure and charges to date (1 month, $70.70 a month, $70.70 total) raises the churn risk" in body
    assert "Contract (Month-to-month) raises the churn risk" in body
    assert "lowers the churn risk" not in body.split("Tenure and charges to date")[1].split("</li>")[0]


def test_campaign_page_shows_effectiveness(staff_client, staff_user, colleague, department):
    campaign = hand_computed_campaign(alice=staff_user, bob=colleague, department=department)
    body = staff_client.get(f"/staff/campaigns/{campaign.pk}/").content.decode()
    assert 'data-role="treatment-rate">80.0%<' in body
    assert 'data-role="control-rate">60.0%<' in body
    assert 'data-role="uplift">+20.0 pts<' in body
    assert "95% CI +5.2 pts to +33.4 pts" in body
    assert 'data-role="saved">16.0<' in body
    assert "9,600.00" in body
    assert "300.00" in body
    assert "9,300.00" in body
    assert "+30.0 pts" in body  # operator's uplift vs control
    assert "Page 1 of 7" in body  # 160 targets, 25 a page
    control_only = staff_client.get(f"/staff/campaigns/{campaign.pk}/?group=control").content.decode()
    assert "80 targets" in control_only


def test_a_campaign_runs_through_the_pages(staff_client, staff_user, colleague):
    for i in range(12):
        scored_customer(f"RUN-{i:02d}", 0.62 + i * 0.03)
    # create
    response = staff_client.post(
        "/staff/campaigns/new/",
        {
            "name": "Winter save",
            "goal": "Keep them",
            "owner": str(staff_user.pk),
            "target_risk_levels": ["high", "critical"],
            "action": "discount",
            "discount_percent": "15",
            "control_share": "25",
            "start_date": str(timezone.localdate()),
            "horizon_months": "12",
            "offer_months": "3",
            "follow_up_days": "7",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    campaign = RetentionCampaign.objects.get(name="Winter save")
    assert campaign.control_share == 0.25
    assert campaign.status == "draft"
    # enrol
    response = staff_client.post(
        f"/staff/campaigns/{campaign.pk}/enrol/", {"assignees": [staff_user.pk, colleague.pk]}, follow=True
    )
    assert "Enrolled 12 customers" in response.content.decode()
    campaign.refresh_from_db()
    assert campaign.status == "active"
    # follow up and record outcomes
    for target in CampaignTarget.objects.filter(campaign=campaign):
        data = {"outcome": "retained" if target.group == "treatment" else "churned"}
        if target.group == "treatment":
            data["follow_up_status"] = "offer_accepted"
        staff_client.post(f"/staff/follow-ups/{target.pk}/update/", data)
    body = staff_client.get(f"/staff/campaigns/{campaign.pk}/").content.decode()
    assert 'data-role="uplift">+100.0 pts<' in body
    # close
    staff_client.post(f"/staff/campaigns/{campaign.pk}/close/")
    campaign.refresh_from_db()
    assert campaign.status == "closed"


def test_campaign_form_errors_are_shown(staff_client):
    response = staff_client.post(
        "/staff/campaigns/new/",
        {
            "name": "No discount",
            "action": "discount",
            "control_share": "10",
            "start_date": str(timezone.localdate()),
            "horizon_months": "12",
            "offer_months": "3",
            "follow_up_days": "7",
        },
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "A discount campaign needs the discount percent." in body
    assert "The target rule needs risk levels or a minimum probability." in body


def test_other_departments_pages_are_404(staff_client, other_department):
    campaign = CampaignFactory(department=other_department, status="active")
    target = TargetFactory(campaign=campaign)
    assert staff_client.get(f"/staff/campaigns/{campaign.pk}/").status_code == 404
    assert staff_client.post(f"/staff/campaigns/{campaign.pk}/enrol/").status_code == 404
    assert staff_client.post(f"/staff/campaigns/{campaign.pk}/close/").status_code == 404
    assert staff_client.post(f"/staff/follow-ups/{target.pk}/update/", {"note": "x"}).status_code == 404
    assert campaign.name not in staff_client.get("/staff/campaigns/").content.decode()
    assert not TargetNote.objects.exists()


# --- query counts: the same bound for a few rows and for many, so no page queries per row ----------


def _populate(department, staff_user, colleague, n):
    campaign = CampaignFactory(department=department, status="active")
    for i in range(n):
        customer = scored_customer(f"Q{n}-{i:03d}", 0.6 + (i % 40) / 100)
        target = TargetFactory(
            campaign=campaign,
            customer=customer,
            assignee=staff_user if i % 2 else colleague,
            group=TargetGroup.CONTROL if i % 7 == 0 else TargetGroup.TREATMENT,
        )
        if target.group == TargetGroup.CONTROL:
            target.assignee = None
            target.save()
        TargetNote.objects.create(target=target, author=staff_user, author_label="user:operator", text=f"note {i}")
    return campaign


@pytest.mark.parametrize("n", [3, 30])
def test_pages_use_a_fixed_number_of_queries(
    staff_client, staff_user, colleague, department, django_assert_max_num_queries, n
):
    campaign = _populate(department, staff_user, colleague, n)
    customer_id = f"Q{n}-001"
    pages = {
        "/staff/": 10,
        "/staff/follow-ups/?assignee=all": 12,  # + saved views, and the staff a bulk change may assign to
        f"/staff/customers/{customer_id}/": 13,  # + the timeline's stream events and campaign steps
        f"/staff/campaigns/{campaign.pk}/": 11,
        "/staff/campaigns/": 5,
    }
    for url, limit in pages.items():
        with django_assert_max_num_queries(limit):
            assert staff_client.get(url).status_code == 200, url
    target = CampaignTarget.objects.filter(campaign=campaign, group="treatment").first()
    with django_assert_max_num_queries(16):
        staff_client.post(
            f"/staff/follow-ups/{target.pk}/update/",
            {"follow_up_status": "contacted", "note": "hi"},
            HTTP_HX_REQUEST="true",
        )


def test_population_charts_come_from_a_snapshot_refreshed_when_stale():
    from django_celery_beat.models import PeriodicTask

    from campaigns.selectors.dashboard import POPULATION_FRESH_SECONDS, population_stats

    scored_customer("SNAP-1", 0.9)
    assert population_stats().risk["critical"] == 1
    scored_customer("SNAP-2", 0.95)
    assert population_stats().risk["critical"] == 1  # a fresh snapshot is served as is
    later = timezone.now() + timedelta(seconds=POPULATION_FRESH_SECONDS + 1)
    assert population_stats(now=later).risk["critical"] == 1  # stale: served once more, refresh queued
    assert population_stats(now=later).risk["critical"] == 2  # the refresh (eager in tests) has landed
    scheduled = set(PeriodicTask.objects.values_list("task", flat=True))
    assert {"campaigns.tasks.refresh_population_stats", "campaigns.tasks.close_ended_campaigns"} <= scheduled


def test_superusers_choose_the_department_of_a_new_campaign(client, admin_user, department, other_department):
    client.force_login(admin_user)
    form = client.get("/staff/campaigns/new/").content.decode()
    assert 'name="department"' in form
    response = client.post("/staff/campaigns/new/", {
        "name": "Finance save", "department": str(other_department.pk), "target_risk_levels": ["critical"],
        "action": "personal_call", "control_share": "10", "start_date": str(timezone.localdate()),
        "horizon_months": "12", "offer_months": "0", "follow_up_days": "3",
    })  # fmt: skip
    assert response.status_code == 302
    assert RetentionCampaign.objects.get(name="Finance save").department == other_department


def test_staff_do_not_choose_a_department(staff_client):
    assert 'name="department"' not in staff_client.get("/staff/campaigns/new/").content.decode()
