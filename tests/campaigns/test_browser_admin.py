"""Every admin list shows its columns at a laptop's width (1366 px), without a sideways scroll."""

from __future__ import annotations

import pytest
from django.contrib import admin

from tests.campaigns import test_browser as browser_tests
from tests.campaigns.test_browser import CHROMIUM, _shot

browser = browser_tests.browser  # the Chromium fixture, shared with the campaign walk-through

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"),
]


def test_admin_lists_fit_1366_px(browser, live_server, admin_user):
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "correct-horse-battery")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    too_wide = []
    own = {"accounts", "customers", "modelregistry", "predictions", "campaigns"}  # third-party admins are theirs
    for model in [m for m in admin.site._registry if m._meta.app_label in own]:
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        page.goto(live_server.url + url)
        hidden = page.evaluate(
            "(() => { const r = document.querySelector('.results'); return r ? r.scrollWidth - r.clientWidth : 0; })()"
        )
        if hidden > 0 or page.evaluate("document.documentElement.scrollWidth") > 1366:
            too_wide.append(f"{url} ({hidden}px hidden)")
            _shot(page, f"admin-too-wide-{model._meta.model_name}")
    assert too_wide == [], "\n".join(too_wide)
