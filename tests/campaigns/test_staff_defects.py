"""The staff and operator defects of the experience review: each test fails on the code before its fix."""

from __future__ import annotations

import pytest
from django.contrib.admin.sites import site
from django.contrib.messages import get_messages
from django.test import RequestFactory
from django.utils import timezone

from campaigns.templatetags.staff_tags import money
from tests.campaigns.factories import CampaignFactory, TargetFactory, scored_customer
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def test_the_root_url_sends_staff_to_their_pages_and_others_to_the_login(client, staff_user):
    anonymous = client.get("/")
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/accounts/login/")

    client.force_login(staff_user)
    signed_in = client.get("/")
    assert signed_in.status_code == 302
    assert signed_in["Location"] == "/staff/"


def test_a_missing_staff_page_is_a_styled_page_not_a_bare_not_found(client, staff_user, settings):
    settings.DEBUG = False
    client.force_login(staff_user)

    response = client.get("/staff/customers/NO-SUCH-CUSTOMER/")

    assert response.status_code == 404
    body = response.content.decode()
    assert 'data-role="error-page"' in body
    assert "css/staff.css" in body
    assert 'href="/"' in body


def test_the_server_error_page_is_styled_and_needs_no_request_context():
    from django.views.defaults import server_error

    response = server_error(RequestFactory().get("/staff/"))

    assert response.status_code == 500
    assert b'data-role="error-page"' in response.content


def test_the_campaign_page_lists_work_before_the_control_group(client, staff_user, department):
    campaign = CampaignFactory(department=department, status="active")
    for i in range(3):
        TargetFactory(campaign=campaign, customer=scored_customer(f"CTL-{i}", 0.9), group="control",
                      due_date=timezone.localdate())
    for i in range(3):
        TargetFactory(campaign=campaign, customer=scored_customer(f"TRT-{i}", 0.7), assignee=staff_user)
    client.force_login(staff_user)

    body = client.get(f"/staff/campaigns/{campaign.pk}/").content.decode()

    first_treatment = min(body.index(f"TRT-{i}") for i in range(3))
    first_control = min(body.index(f"CTL-{i}") for i in range(3))
    assert first_treatment < first_control


def test_search_says_when_it_shows_only_the_first_matches(client, staff_user):
    for n in range(25):
        CustomerFactory(customer_id=f"SRCH-{n:03d}", tenure_months=1, total_charges=50.0)
    client.force_login(staff_user)

    body = client.get("/staff/customers/?q=SRCH").content.decode()

    assert "Showing the first 20 of 25 customers" in body
    assert "1 month<" in body
    assert "1 months" not in body


def test_money_carries_the_configured_currency(settings):
    settings.CURRENCY, settings.CURRENCY_LOCALE = "USD", "en_US"
    assert money(1234.5) == "$1,234.50"
    settings.CURRENCY, settings.CURRENCY_LOCALE = "EUR", "de_DE"
    assert money(1234.5) == "1.234,50\xa0€"


def test_revoking_an_already_revoked_key_says_so(rf, admin_user, department):
    from accounts.models import ApiKey
    from accounts.services import SYSTEM, api_key_create, api_key_revoke

    key, _ = api_key_create(department=department, name="old")
    api_key_revoke(key_id=key.pk, actor=SYSTEM)
    request = rf.post("/admin/accounts/apikey/")
    request.user = admin_user
    request.session = {}
    from django.contrib.messages.storage.fallback import FallbackStorage

    request._messages = FallbackStorage(request)
    model_admin = site._registry[ApiKey]

    model_admin.revoke_selected(request, ApiKey.objects.filter(pk=key.pk))

    texts = [str(m) for m in get_messages(request)]
    assert texts == ["No key revoked. 1 was already revoked."]


def test_trigger_figures_in_admin_messages_are_rounded():
    from modelregistry.admin import _figure

    assert _figure(0.32894736842105265) == "0.3289"
    assert _figure(None) == "-"
