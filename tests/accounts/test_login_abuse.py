"""Issue 11 finding 2: one lock-out policy for the admin, the staff pages and the token endpoint,
per account and address plus per address, audited and counted; failed API keys counted per address."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings
from rest_framework.test import APIClient

from accounts.models import AuditLogEntry
from tests.ops.metrics_text import samples, value

pytestmark = pytest.mark.django_db

RIGHT = "correct-horse-battery"


@pytest.fixture(autouse=True)
def _limit(settings):
    settings.LOGIN_MAX_FAILURES = 5
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _admin(ip: str, username: str, password: str):  # type: ignore[no-untyped-def]
    return Client(REMOTE_ADDR=ip).post("/admin/login/?next=/admin/", {"username": username, "password": password})


def _staff(ip: str, username: str, password: str):  # type: ignore[no-untyped-def]
    return Client(REMOTE_ADDR=ip).post("/accounts/login/", {"username": username, "password": password})


def _token(ip: str, username: str, password: str):  # type: ignore[no-untyped-def]
    return APIClient(REMOTE_ADDR=ip).post("/api/v1/auth/token/", {"username": username, "password": password},
                                          format="json")


def _metric(name: str, **labels: str) -> float:
    return value(samples(Client().get("/metrics").content.decode()), name, **labels)


def _lockouts(via: str) -> float:
    return _metric("churn_login_lockouts_total", via=via)


def test_the_admin_login_refuses_the_right_password_after_repeated_failures(admin_user):
    """/admin/login/ took 150 wrong superuser passwords, then accepted the right one."""
    before = _lockouts("admin")
    for _ in range(4):
        assert _admin("198.51.100.1", "root", "wrong").status_code == 200
    assert _admin("198.51.100.1", "root", "wrong").status_code == 429
    locked = _admin("198.51.100.1", "root", RIGHT)
    assert locked.status_code == 429
    assert int(locked["Retry-After"]) == 15 * 60
    assert _lockouts("admin") >= before + 1
    entry = AuditLogEntry.objects.filter(action="auth.lockout").latest("created_at")
    assert entry.details["via"] == "admin"
    assert entry.details["username"] == "root"
    assert entry.ip_address == "198.51.100.1"
    assert AuditLogEntry.objects.filter(action="auth.login", outcome="denied", details__via="admin").count() >= 5
    # another address is not locked out for this account by the failures of the first
    assert _admin("198.51.100.2", "root", RIGHT).status_code == 302


def test_the_token_endpoint_locks_an_account_out_per_address(user):
    """POST auth/token/ had no per-account lock-out, only 120/min per address."""
    for _ in range(4):
        assert _token("198.51.100.3", "alice", "wrong").status_code == 401
    refused = _token("198.51.100.3", "alice", "wrong")
    assert refused.status_code == 429
    assert refused.json()["code"] == "locked_out"
    assert int(refused["Retry-After"]) > 0
    assert _token("198.51.100.3", "alice", RIGHT).status_code == 429
    assert _token("198.51.100.4", "alice", RIGHT).status_code == 200
    assert AuditLogEntry.objects.filter(action="auth.lockout", details__via="token").exists()


def test_failures_on_one_login_count_on_the_others(user):
    """The staff lock-out did not carry over to the admin or the token endpoint."""
    for _ in range(3):
        _staff("198.51.100.5", "alice", "wrong")
    _admin("198.51.100.5", "alice", "wrong")
    assert _token("198.51.100.5", "alice", "wrong").status_code == 429
    assert _token("198.51.100.5", "alice", RIGHT).status_code == 429
    assert _staff("198.51.100.5", "alice", RIGHT).status_code == 429


def test_an_address_spraying_many_accounts_is_locked_out(user, staff_user, admin_user):
    for i in range(5):
        _token("198.51.100.6", f"nobody-{i}", "wrong")
    assert _token("198.51.100.6", "alice", RIGHT).status_code == 429
    assert _staff("198.51.100.6", "operator", RIGHT).status_code == 429
    assert _token("198.51.100.7", "alice", RIGHT).status_code == 200


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_behind_the_ingress_lock_outs_follow_the_client_not_the_proxy(user):
    for _ in range(5):
        APIClient(REMOTE_ADDR="10.0.0.2").post("/api/v1/auth/token/", {"username": "alice", "password": "wrong"},
                                               format="json", HTTP_X_FORWARDED_FOR="203.0.113.50")
    locked = APIClient(REMOTE_ADDR="10.0.0.2").post(
        "/api/v1/auth/token/", {"username": "alice", "password": RIGHT}, format="json",
        HTTP_X_FORWARDED_FOR="203.0.113.50")
    assert locked.status_code == 429
    other_client = APIClient(REMOTE_ADDR="10.0.0.2").post(
        "/api/v1/auth/token/", {"username": "alice", "password": RIGHT}, format="json",
        HTTP_X_FORWARDED_FOR="203.0.113.51")
    assert other_client.status_code == 200


def test_failed_api_keys_are_counted_per_address_and_answered_429(settings, api_key):
    settings.API_KEY_MAX_FAILURES_PER_MINUTE = 3
    bad = APIClient(REMOTE_ADDR="198.51.100.8")
    bad.credentials(HTTP_X_API_KEY="chp_000000000000_" + "x" * 43)
    assert [bad.get("/api/v1/customers/").status_code for _ in range(3)] == [401, 401, 401]
    refused = bad.get("/api/v1/customers/")
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60
    # other addresses are not affected
    good = APIClient(REMOTE_ADDR="198.51.100.9")
    good.credentials(HTTP_X_API_KEY=api_key[1])
    assert good.get("/api/v1/customers/").status_code == 200
    assert _metric("churn_api_key_failures_throttled_total") >= 1
