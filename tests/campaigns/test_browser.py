"""Browser tests: a staff member runs a campaign in Debian's Chromium, driven by Playwright.

Each page visited is saved as a screenshot in test-artifacts/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

from campaigns.models import CampaignTarget, RetentionCampaign, TargetNote
from predictions.models import Prediction
from tests.campaigns.factories import scored_customer

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"
LAUNCH_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync",
]  # fmt: skip

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"),
]


@pytest.fixture
def browser(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        yield instance
        instance.close()
        # ORM calls made while Playwright's loop runs get their own connection (asgiref keys them by
        # context, not thread); close it, or the test database cannot be dropped at the end.
        connections.close_all()


def _shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _watch_console(page) -> list[str]:  # type: ignore[no-untyped-def]
    """Content-Security-Policy violations Chromium reports on the page's console (issue 11, finding 8)."""
    found: list[str] = []

    def record(message) -> None:  # type: ignore[no-untyped-def]
        if message.type == "error" and "Content Security Policy" in message.text:
            found.append(message.text)

    page.on("console", record)
    return found


def _login(page, base: str) -> None:
    page.goto(f"{base}/staff/")
    assert "/accounts/login/" in page.url
    _shot(page, "01-login")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/staff/")


def test_staff_member_runs_a_campaign_from_enrolment_to_measured_effect(browser, live_server, staff_user):
    for i in range(12):
        scored_customer(f"WEB-{i:02d}", 0.62 + i * 0.03)
    base = live_server.url
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    console_errors = _watch_console(page)

    # log in and see the dashboard, served under the Content-Security-Policy
    _login(page, base)
    assert "script-src 'self'" in page.goto(f"{base}/staff/").headers["content-security-policy"]
    assert page.locator("h1").inner_text() == "Dashboard"
    assert page.locator("svg.chart").count() >= 3
    critical = Prediction.objects.filter(risk_level="critical").count()
    assert f"Critical: {critical}" in page.content()
    _shot(page, "02-dashboard")

    # create a campaign
    page.click("text=Campaigns")
    page.click("text=New campaign")
    page.fill("#id_name", "Browser save")
    page.fill("#id_goal", "Keep high-risk customers")
    page.select_option("#id_action", "discount")
    page.fill("#id_discount_percent", "15")
    page.fill("#id_control_share", "25")
    _shot(page, "03-campaign-form")
    page.click("text=Create campaign")
    page.wait_for_url(re.compile(r".*/staff/campaigns/\d+/$"))
    assert "Enrol customers to start it" in page.content()

    # enrol, dealing the follow-ups to me
    page.check(f"input[name=assignees][value='{staff_user.pk}']")
    page.click("#enrol-form button[type=submit]")
    page.wait_for_selector("text=Enrolled 12 customers")
    assert page.locator("[data-role=campaign-status]").inner_text() == "Active"
    _shot(page, "04-campaign-enrolled")
    campaign = RetentionCampaign.objects.get(name="Browser save")
    treated = CampaignTarget.objects.filter(campaign=campaign, group="treatment").count()
    assert 0 < treated < 12

    # my follow-ups: update the first one in one step, without leaving the page (htmx)
    page.click("text=My follow-ups")
    page.wait_for_selector("#follow-up-list article.card")
    assert page.evaluate("typeof window.htmx") == "object"
    _shot(page, "05-my-follow-ups")
    card = page.locator("#follow-up-list article.card").first
    target_id = card.get_attribute("data-target-id")
    customer_id = card.locator("a.customer").inner_text()
    card.locator("summary").click()
    card.locator("select[name=follow_up_status]").select_option("offer_accepted")
    card.locator("select[name=outcome]").select_option("retained")
    card.locator("textarea[name=note]").fill("Accepted 15% on the phone.")
    url_before = page.url
    card.locator("button.primary[type=submit]").click()  # the Save button, not a playbook step's Done
    updated = page.locator(f"#target-{target_id}")
    updated.locator("text=Saved.").wait_for()
    assert updated.locator("[data-role=status]").inner_text() == "Offer accepted"
    assert updated.locator("[data-role=outcome]").inner_text() == "Retained"
    assert "Accepted 15% on the phone." in updated.inner_text()
    assert page.url == url_before  # swapped in place, no page load
    _shot(page, "06-follow-up-updated")
    target = CampaignTarget.objects.get(pk=target_id)
    assert (target.follow_up_status, target.outcome) == ("offer_accepted", "retained")
    assert TargetNote.objects.get(target=target).author == staff_user

    # the customer page shows the change, the history and the reasons in words
    page.goto(f"{base}/staff/customers/{customer_id}/")
    assert "Offer accepted" in page.content()
    assert "Accepted 15% on the phone." in page.content()
    assert "raises the churn risk" in page.content()
    _shot(page, "07-customer")

    # record a control customer's outcome from the campaign page, then read the measured effect
    page.goto(f"{base}/staff/campaigns/{campaign.pk}/?group=control#targets")
    control = page.locator("article.card.control").first
    control.locator("summary").click()
    control.locator("select[name=outcome]").select_option("churned")
    control.locator("button[type=submit]").click()
    page.locator(f"#target-{control.get_attribute('data-target-id')} >> text=Saved.").wait_for()
    page.goto(f"{base}/staff/campaigns/{campaign.pk}/")
    assert page.locator("[data-role=treatment-rate]").inner_text() == "100.0%"
    assert page.locator("[data-role=control-rate]").inner_text() == "0.0%"
    assert page.locator("[data-role=uplift]").inner_text() == "+100.0 pts"
    _shot(page, "08-campaign-effect")
    assert errors == []
    assert console_errors == [], console_errors  # no Content-Security-Policy violation on any staff page
    page.close()


def test_pages_fit_a_phone_screen(browser, live_server, staff_user, department):
    from tests.campaigns.factories import CampaignFactory, TargetFactory

    campaign = CampaignFactory(department=department, status="active", name="Phone check")
    for i in range(3):
        TargetFactory(campaign=campaign, customer=scored_customer(f"PH-{i}", 0.9), assignee=staff_user)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    _login(page, live_server.url)
    for name, path in [
        ("09-mobile-dashboard", "/staff/"),
        ("10-mobile-follow-ups", "/staff/follow-ups/"),
        ("11-mobile-campaign", f"/staff/campaigns/{campaign.pk}/"),
        ("12-mobile-customer", "/staff/customers/PH-0/"),
    ]:
        page.goto(live_server.url + path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow}px wider than the phone screen"
        _shot(page, name)
    assert page.locator("article.card").count() == 1  # the customer's open follow-up
    context.close()


def test_admin_pages_work_under_the_content_security_policy(browser, live_server, admin_user):
    scored_customer("ADM-1", 0.9)
    base = live_server.url
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    console_errors = _watch_console(page)
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "correct-horse-battery")
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")
    for path in ("/admin/", "/admin/customers/customer/", "/admin/customers/customer/ADM-1/change/",
                 "/admin/modelregistry/retrainingrun/", "/admin/predictions/batchjob/", "/admin/accounts/apikey/add/"):
        response = page.goto(base + path)
        assert response.status == 200, path
        assert "default-src 'self'" in response.headers["content-security-policy"], path
    _shot(page, "13-admin-under-csp")
    assert console_errors == []
    page.close()
