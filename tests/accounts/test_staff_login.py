from __future__ import annotations

import pytest

from accounts.models import AuditLogEntry

pytestmark = pytest.mark.django_db


def test_staff_sign_in_is_audited(client, staff_user):
    response = client.post("/accounts/login/", {"username": "operator", "password": "correct-horse-battery"})
    assert response.status_code == 302
    entry = AuditLogEntry.objects.get(action="auth.login", outcome="success")
    assert entry.actor_user == staff_user
    assert entry.details == {"via": "session"}


def test_repeated_failures_lock_the_address_out(client, staff_user, settings):
    settings.LOGIN_MAX_FAILURES = 3
    for _ in range(2):
        response = client.post("/accounts/login/", {"username": "operator", "password": "nope"})
        assert response.status_code == 200
    # the third failure locks the account at this address out (django-axes counts up to the limit)
    assert client.post("/accounts/login/", {"username": "operator", "password": "nope"}).status_code == 429
    locked = client.post("/accounts/login/", {"username": "operator", "password": "correct-horse-battery"})
    assert locked.status_code == 429
    assert locked["Retry-After"] == "900"
    assert b"Too many failed sign-ins" in locked.content
    assert AuditLogEntry.objects.filter(action="auth.login", outcome="denied").count() == 4
    assert not AuditLogEntry.objects.filter(action="auth.login", outcome="success").exists()


def test_a_success_clears_the_failure_count(client, staff_user, settings):
    settings.LOGIN_MAX_FAILURES = 2
    client.post("/accounts/login/", {"username": "operator", "password": "nope"})
    assert (
        client.post("/accounts/login/", {"username": "operator", "password": "correct-horse-battery"}).status_code
        == 302
    )
    client.logout()
    client.post("/accounts/login/", {"username": "operator", "password": "nope"})
    assert (
        client.post("/accounts/login/", {"username": "operator", "password": "correct-horse-battery"}).status_code
        == 302
    )
