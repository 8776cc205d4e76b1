from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.models import ApiKey, AuditLogEntry
from accounts.services import SYSTEM, api_key_create, api_key_revoke

pytestmark = pytest.mark.django_db

CUSTOMERS = "/api/v1/customers/"


def _client(key: str, ip: str = "127.0.0.1") -> APIClient:
    client = APIClient(REMOTE_ADDR=ip)
    client.credentials(HTTP_X_API_KEY=key)
    return client


def test_no_credentials_get_401_json(api_client):
    response = api_client.get(CUSTOMERS)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "not_authenticated"
    assert "WWW-Authenticate" in response


@pytest.mark.parametrize("key", ["nonsense", "chp_000000000000_" + "x" * 43])
def test_unknown_or_malformed_key_is_401(key):
    response = _client(key).get(CUSTOMERS)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_api_key"


def test_valid_key_reads_and_records_last_use(api_key):
    key, plaintext = api_key
    assert _client(plaintext).get(CUSTOMERS).status_code == 200
    key.refresh_from_db()
    assert key.last_used_at is not None
    assert key.last_used_ip == "127.0.0.1"


def test_key_is_stored_only_as_a_hash(api_key):
    key, plaintext = api_key
    secret = plaintext.split("_", 2)[2]
    stored = ApiKey.objects.filter(pk=key.pk).values().get()
    assert all(secret not in str(value) for value in stored.values())
    assert len(key.secret_hash) == 128


def test_wrong_secret_with_a_real_prefix_is_401(api_key):
    _key, plaintext = api_key
    forged = plaintext[:-4] + ("AAAA" if not plaintext.endswith("AAAA") else "BBBB")
    assert _client(forged).get(CUSTOMERS).status_code == 401


def test_revoked_key_is_401_at_once_even_when_cached(api_key):
    key, plaintext = api_key
    client = _client(plaintext)
    assert client.get(CUSTOMERS).status_code == 200  # the key is now cached
    api_key_revoke(key_id=key.pk, actor=SYSTEM, reason="leaked")
    response = client.get(CUSTOMERS)
    assert response.status_code == 401
    assert response.json()["code"] == "api_key_revoked"
    assert AuditLogEntry.objects.filter(action="api_key.revoke", object_id=str(key.pk)).exists()


def test_expired_key_is_401(department):
    _, plaintext = api_key_create(department=department, name="old", expires_at=timezone.now() - timedelta(seconds=1))
    response = _client(plaintext).get(CUSTOMERS)
    assert response.status_code == 401
    assert response.json()["code"] == "api_key_expired"


def test_key_from_an_address_outside_its_allowlist_is_403(department):
    _, plaintext = api_key_create(department=department, name="office", ip_allowlist=["10.1.0.0/16", "192.0.2.7"])
    assert _client(plaintext, ip="10.1.44.2").get(CUSTOMERS).status_code == 200
    assert _client(plaintext, ip="192.0.2.7").get(CUSTOMERS).status_code == 200
    response = _client(plaintext, ip="203.0.113.9").get(CUSTOMERS)
    assert response.status_code == 403
    assert response.json()["code"] == "ip_not_allowed"


def test_key_without_the_scope_is_403(department):
    _, plaintext = api_key_create(department=department, name="reader", scopes=["customers:read"])
    client = _client(plaintext)
    assert client.get(CUSTOMERS).status_code == 200
    response = client.post(CUSTOMERS, {"customer_id": "X"}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "missing_scope"


def test_rate_limit_per_key_answers_429_with_retry_after(department):
    department.key_rate_limit_per_minute = 3
    department.save()
    _, plaintext = api_key_create(department=department, name="limited")
    client = _client(plaintext)
    assert [client.get(CUSTOMERS).status_code for _ in range(3)] == [200, 200, 200]
    response = client.get(CUSTOMERS)
    assert response.status_code == 429
    assert response.json()["code"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 60


def test_rate_limits_are_counted_per_key(department):
    department.key_rate_limit_per_minute = 2
    department.save()
    _, first = api_key_create(department=department, name="a")
    _, second = api_key_create(department=department, name="b")
    for _ in range(2):
        _client(first).get(CUSTOMERS)
    assert _client(first).get(CUSTOMERS).status_code == 429
    assert _client(second).get(CUSTOMERS).status_code == 200


def test_key_limit_overrides_department(department):
    department.key_rate_limit_per_minute = 1000
    department.save()
    _, plaintext = api_key_create(department=department, name="tight", rate_limit_per_minute=1)
    client = _client(plaintext)
    assert client.get(CUSTOMERS).status_code == 200
    assert client.get(CUSTOMERS).status_code == 429


def test_user_rate_limit_per_department(user, department):
    department.user_rate_limit_per_minute = 2
    department.save()
    client = APIClient()
    client.force_authenticate(user)
    assert [client.get(CUSTOMERS).status_code for _ in range(3)] == [200, 200, 429]


# --- JWT ------------------------------------------------------------------------------------


def _login(username="alice", password="correct-horse-battery"):
    return APIClient().post("/api/v1/auth/token/", {"username": username, "password": password}, format="json")


def test_jwt_login_and_use(user):
    response = _login()
    assert response.status_code == 200
    tokens = response.json()
    assert set(tokens) == {"access", "refresh"}
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert client.get(CUSTOMERS).status_code == 200
    assert AuditLogEntry.objects.filter(action="auth.login", outcome="success", actor_user=user).exists()


def test_failed_login_is_401_and_audited(user):
    response = _login(password="wrong")
    assert response.status_code == 401
    entry = AuditLogEntry.objects.get(action="auth.login", outcome="denied")
    assert entry.details == {"via": "token", "username": "alice", "reason": "wrong credentials"}


def test_expired_jwt_is_401(user):
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=-timedelta(seconds=1))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.get(CUSTOMERS)
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


def test_forged_jwt_is_401(user):
    import jwt

    payload = dict(AccessToken.for_user(user).payload)
    forged = jwt.encode(payload, "not-the-signing-key-but-long-enough-for-hs256!", algorithm="HS256")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert client.get(CUSTOMERS).status_code == 401


def test_refresh_rotates_and_the_old_refresh_token_is_dead(user):
    refresh = _login().json()["refresh"]
    client = APIClient()
    first = client.post("/api/v1/auth/token/refresh/", {"refresh": refresh}, format="json")
    assert first.status_code == 200
    assert first.json()["refresh"] != refresh
    again = client.post("/api/v1/auth/token/refresh/", {"refresh": refresh}, format="json")
    assert again.status_code == 401


def test_logout_blacklists_the_refresh_token(user):
    refresh = str(RefreshToken.for_user(user))
    client = APIClient()
    assert client.post("/api/v1/auth/logout/", {"refresh": refresh}, format="json").status_code == 200
    assert client.post("/api/v1/auth/token/refresh/", {"refresh": refresh}, format="json").status_code == 401


# --- departments ----------------------------------------------------------------------------


def test_a_department_never_reads_another_departments_keys(department, other_department):
    _manager, plaintext = api_key_create(department=department, name="test-client", scopes=["keys:manage"])
    foreign, _ = api_key_create(department=other_department, name="theirs")
    client = _client(plaintext)
    assert client.get(f"/api/v1/api-keys/{foreign.pk}/").status_code == 404
    assert client.post(f"/api/v1/api-keys/{foreign.pk}/revoke/", {}, format="json").status_code == 404
    listed = client.get("/api/v1/api-keys/").json()["results"]
    assert [k["name"] for k in listed] == ["test-client"]
    foreign.refresh_from_db()
    assert foreign.revoked_at is None


def test_a_department_never_reads_another_departments_audit_log(api_key, other_department):
    other, _ = api_key_create(department=other_department, name="theirs")
    mine = _client(api_key[1]).get("/api/v1/audit-log/").json()["results"]
    assert {e["department"] for e in mine} == {"retention"}
    foreign_entry = AuditLogEntry.objects.get(action="api_key.create", object_id=str(other.pk))
    assert _client(api_key[1]).get(f"/api/v1/audit-log/{foreign_entry.pk}/").status_code == 404


def test_revoke_own_key_through_the_api(department):
    manager = api_key_create(department=department, name="key-admin", scopes=["keys:manage"])
    spare, spare_plain = api_key_create(department=department, name="spare")
    response = _client(manager[1]).post(f"/api/v1/api-keys/{spare.pk}/revoke/", {"reason": "rotated"}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "revoked"
    assert _client(spare_plain).get(CUSTOMERS).status_code == 401
    entry = AuditLogEntry.objects.get(action="api_key.revoke")
    assert entry.actor_api_key_id == manager[0].pk
    assert entry.details == {"reason": "rotated"}


def test_key_management_needs_the_keys_manage_scope(department):
    """Issue 11 finding 4: a key with customers:write revoked its department's models:manage key."""
    _writer, writer_plain = api_key_create(department=department, name="writer", scopes=["customers:write"])
    target, target_plain = api_key_create(department=department, name="trainer", scopes=["models:manage"])
    refused = _client(writer_plain).post(f"/api/v1/api-keys/{target.pk}/revoke/", {}, format="json")
    assert refused.status_code == 403
    assert refused.json()["code"] == "missing_scope"
    assert _client(writer_plain).get("/api/v1/api-keys/").status_code == 403
    target.refresh_from_db()
    assert target.revoked_at is None
    assert _client(target_plain).get("/api/v1/auth/whoami/").status_code == 200
    _manager, manager_plain = api_key_create(department=department, name="key-admin", scopes=["keys:manage"])
    assert _client(manager_plain).post(f"/api/v1/api-keys/{target.pk}/revoke/", {}, format="json").status_code == 200
    assert "keys:manage" not in api_key_create(department=department, name="default")[0].scopes


def test_whoami(api_key):
    body = _client(api_key[1]).get("/api/v1/auth/whoami/").json()
    assert body["department"] == "retention"
    assert body["actor"] == f"api-key:test-client#{api_key[0].pk}"
    assert "models:manage" not in body["scopes"]


def test_create_api_key_command_prints_a_working_key_last(capsys, db):
    call_command("create_api_key", "--department", "analytics", "--name", "dashboards")
    lines = capsys.readouterr().out.strip().splitlines()
    plaintext = lines[-1]
    assert plaintext.startswith("chp_")
    assert _client(plaintext).get(CUSTOMERS).status_code == 200
    assert AuditLogEntry.objects.filter(action="api_key.create", department__name="analytics").exists()


def test_a_user_without_a_department_reads_no_department_less_audit_entries(db):
    """Issue 11 finding 8: a JWT user with no department read every failed login (username, IP)."""
    from tests.factories import UserFactory

    loner = UserFactory(username="loner")
    APIClient(REMOTE_ADDR="203.0.113.9").post(
        "/api/v1/auth/token/", {"username": "nobody", "password": "guessed-wrong"}, format="json"
    )
    failed = AuditLogEntry.objects.get(action="auth.login", outcome="denied")
    assert failed.department_id is None
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(loner)}")
    assert client.get("/api/v1/audit-log/").json()["results"] == []
    assert client.get(f"/api/v1/audit-log/{failed.pk}/").status_code == 404
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(root)}")
    assert failed.pk in {e["id"] for e in client.get("/api/v1/audit-log/").json()["results"]}
