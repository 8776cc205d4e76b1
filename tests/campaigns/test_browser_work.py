"""Bulk assignment, CSV export and the audience preview, in Debian's Chromium."""

from __future__ import annotations

import csv
import io

import pytest

from campaigns.models import CampaignTarget
from tests.campaigns import test_browser as browser_tests
from tests.campaigns.factories import CampaignFactory, TargetFactory, scored_customer
from tests.campaigns.test_browser import CHROMIUM, _login, _shot

browser = browser_tests.browser  # the Chromium fixture, shared with the campaign walk-through

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"),
]


def test_bulk_assignment_and_csv_export_from_the_follow_up_list(browser, live_server, staff_user, colleague,
                                                               department):
    campaign = CampaignFactory(department=department, status="active", name="Bulk in the browser")
    targets = [TargetFactory(campaign=campaign, customer=scored_customer(f"BB-{i}", 0.7), assignee=None)
               for i in range(3)]
    context = browser.new_context(viewport={"width": 1366, "height": 900}, accept_downloads=True)
    page = context.new_page()
    _login(page, live_server.url)

    page.goto(f"{live_server.url}/staff/follow-ups/?assignee=unassigned")
    for target in targets[:2]:
        page.check(f"#target-{target.pk} input[name=targets]")
    page.select_option("#bulk-form select[name=assignee]", str(colleague.pk))
    _shot(page, "work-01-bulk-selected")
    page.click("#bulk-form button[type=submit]")
    page.wait_for_selector("text=Changed 2 of 2 follow-ups.")
    _shot(page, "work-02-bulk-done")

    assert set(CampaignTarget.objects.filter(assignee=colleague).values_list("pk", flat=True)) == {
        targets[0].pk, targets[1].pk
    }
    with page.expect_download() as info:
        page.click("[data-role=export-follow-ups]")
    rows = list(csv.DictReader(io.StringIO(open(info.value.path()).read())))  # noqa: SIM115
    assert [r["customer_id"] for r in rows] == ["BB-2"]  # the one still unassigned
    context.close()


def test_the_audience_preview_shows_the_expected_figures_before_enrolling(browser, live_server, staff_user,
                                                                         department):
    for name, (p, m) in {"A": (0.90, 100.0), "B": (0.80, 50.0), "C": (0.70, 120.0)}.items():
        scored_customer(f"PV-{name}", p, monthly_charges=m, total_charges=m * 12)
    campaign = CampaignFactory(
        department=department, target_risk_levels=["high", "critical"], discount_percent=20, offer_months=3,
        horizon_months=12, control_share=0.0, save_rate_prior=0.25, selection="value", budget_offers=2,
    )  # fmt: skip
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    _login(page, live_server.url)

    page.goto(f"{live_server.url}/staff/campaigns/{campaign.pk}/")
    page.click("[data-role=preview-button]")
    page.wait_for_selector("[data-role=preview]")
    _shot(page, "work-03-preview")

    # A (210) and C (180) beat B (90): saves .25 x 1.6 = .4, revenue 270 + 252, cost 60 + 72, net 390
    assert page.inner_text("[data-role=preview-selected]").startswith("2 ")
    assert page.inner_text("[data-role=preview-saves]").startswith("0.40")
    assert page.inner_text("[data-role=preview-revenue]") == "$522.00"
    assert page.inner_text("[data-role=preview-cost]") == "$132.00"
    assert page.inner_text("[data-role=preview-net]") == "$390.00"
    assert not CampaignTarget.objects.filter(campaign=campaign).exists()  # a preview enrols nobody
    page.close()
