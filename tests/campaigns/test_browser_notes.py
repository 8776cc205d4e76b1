"""What a staff member types survives every failed save, and no staff page is wider than a phone.

Driven in Debian's Chromium by Playwright against the live test server; screenshots go to test-artifacts/.
"""

from __future__ import annotations

import pytest

from campaigns.models import TargetNote
from tests.campaigns import test_browser as browser_tests
from tests.campaigns.factories import CampaignFactory, TargetFactory, hand_computed_campaign, scored_customer
from tests.campaigns.test_browser import ARTIFACTS, CHROMIUM, _login, _shot

browser = browser_tests.browser  # the Chromium fixture, shared with the campaign walk-through

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"),
]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}


@pytest.fixture
def follow_up(staff_user, department):
    campaign = CampaignFactory(department=department, status="active", name="Notes")
    return TargetFactory(campaign=campaign, customer=scored_customer("NOTE-1", 0.85), assignee=staff_user)


def _open_card(page, base: str, target_id: int):
    page.goto(f"{base}/staff/follow-ups/")
    card = page.locator(f"#target-{target_id}")
    card.locator("summary").click()
    return card


def test_a_note_survives_an_expired_session_and_is_saved_after_signing_in_in_place(
    browser, live_server, staff_user, follow_up
):
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    _login(page, live_server.url)
    card = _open_card(page, live_server.url, follow_up.pk)
    note = "Called twice; she wants the loyalty offer in writing before Friday."
    card.locator("textarea[name=note]").fill(note)

    # the session ends while the note is being typed
    context.clear_cookies(name="sessionid")
    card.locator("button.primary[type=submit]").click()

    dialog = page.locator("#signin-dialog")
    dialog.wait_for(state="visible")
    assert page.locator(".topbar").count() == 1  # no login page swapped into the card
    assert card.locator("textarea[name=note]").input_value() == note
    _shot(page, "notes-01-session-expired")
    dialog.locator("input[name=username]").fill("operator")
    dialog.locator("input[name=password]").fill("correct-horse-battery")
    dialog.locator("button[type=submit]").click()

    page.locator(f"#target-{follow_up.pk} >> text=Saved.").wait_for()
    assert TargetNote.objects.get(target=follow_up).text == note
    page.wait_for_function("document.activeElement && document.activeElement.dataset.role === 'saved'")
    assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('churn-draft:')).length") == 0
    context.close()


def test_a_note_survives_a_missing_csrf_cookie(browser, live_server, staff_user, follow_up):
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    _login(page, live_server.url)
    card = _open_card(page, live_server.url, follow_up.pk)
    card.locator("textarea[name=note]").fill("Asked for a call back next week.")

    context.clear_cookies(name="csrftoken")
    card.locator("button.primary[type=submit]").click()

    page.locator(f"#target-{follow_up.pk} >> text=Saved.").wait_for()
    assert TargetNote.objects.get(target=follow_up).text == "Asked for a call back next week."
    context.close()


def test_a_note_too_long_comes_back_with_the_error_and_a_draft_survives_a_reload(
    browser, live_server, staff_user, follow_up
):
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    _login(page, live_server.url)
    card = _open_card(page, live_server.url, follow_up.pk)
    long_note = "x" * 5200
    box = card.locator("textarea[name=note]")
    # maxlength stops typing at 5,000; a pasted or scripted value can still be longer
    box.evaluate("(el, text) => { el.removeAttribute('maxlength'); el.value = text; }", long_note)
    box.dispatch_event("input")
    card.locator("button.primary[type=submit]").click()

    page.locator(f"#target-{follow_up.pk} .errors").wait_for()
    assert page.locator(f"#target-{follow_up.pk} textarea[name=note]").input_value() == long_note
    _shot(page, "notes-02-too-long")
    assert not TargetNote.objects.filter(target=follow_up).exists()

    # typing, then leaving the page: the draft is back when the page is opened again
    page.locator(f"#target-{follow_up.pk} textarea[name=note]").fill("Half-written note")
    page.reload()
    assert page.locator(f"#target-{follow_up.pk} textarea[name=note]").input_value() == "Half-written note"
    context.close()


def test_a_refused_save_without_javascript_shows_the_text_again(client, staff_user, follow_up):
    client.force_login(staff_user)

    response = client.post(f"/staff/follow-ups/{follow_up.pk}/update/", {"note": "y" * 5001})

    assert response.status_code == 400
    assert "y" * 5001 in response.content.decode()
    assert "Ensure this value has at most 5000 characters" in response.content.decode()


def test_no_staff_page_is_wider_than_the_screen(browser, live_server, staff_user, department):
    from tests.factories import UserFactory

    bob = UserFactory(username="bob", department=department, is_staff=True)
    campaign = hand_computed_campaign(alice=staff_user, bob=bob, department=department)
    TargetFactory(campaign=CampaignFactory(department=department, status="active"),
                  customer=scored_customer("PH-0", 0.9), assignee=staff_user)
    pages = [
        ("dashboard", "/staff/"),
        ("follow-ups", "/staff/follow-ups/"),
        ("campaigns", "/staff/campaigns/"),
        ("campaign", f"/staff/campaigns/{campaign.pk}/"),
        ("campaign-new", "/staff/campaigns/new/"),
        ("customer", "/staff/customers/PH-0/"),
        ("search", "/staff/customers/?q=H"),
        ("not-found", "/staff/customers/NO-SUCH-ONE/"),
    ]
    for size_name, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        # is_mobile=False: a mobile viewport would zoom out to fit a too-wide page and hide the overflow
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        _login(page, live_server.url)
        for name, path in pages:
            page.goto(live_server.url + path)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= viewport["width"], f"{path} is {width}px wide on a {viewport['width']}px screen"
            if size_name == "desktop":
                # nothing is cut off inside its scrolling box at a laptop's width either
                hidden = page.evaluate(
                    "[...document.querySelectorAll('.scroll-x')].filter(b => b.scrollWidth > b.clientWidth).length"
                )
                assert hidden == 0, f"{path} cuts off a table or chart at {viewport['width']}px"
            _shot(page, f"staff-{name}-{size_name}")
        context.close()
    assert (ARTIFACTS / "staff-dashboard-phone.png").exists()
