"""Issue 11 finding 8: no-store API answers, the client address rule behind the ingress, /metrics
protection on the web and the worker, and a development key that is not in the source."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client, override_settings

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db


def _settings_in_subprocess(expression: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Evaluate a settings expression in a fresh process: settings are read from the environment once."""
    full_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "churn_platform.settings", **env}
    for name in ("DJANGO_SECRET_KEY", "JWT_SIGNING_KEY"):
        if name not in env:
            full_env.pop(name, None)
    code = f"from django.conf import settings; print({expression})"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=120, check=False)


# --- Cache-Control ------------------------------------------------------------------------------


def test_api_answers_are_never_stored(key_client, api_client):
    for response in (key_client.get("/api/v1/customers/"), api_client.get("/api/v1/customers/"),
                     key_client.get("/api/v1/customers/NOPE/")):
        assert "no-store" in response["Cache-Control"], response.status_code


# --- TRUSTED_PROXY_COUNT --------------------------------------------------------------------------


def test_trusted_proxy_count_is_a_setting_read_from_the_environment():
    done = _settings_in_subprocess("settings.TRUSTED_PROXY_COUNT", TRUSTED_PROXY_COUNT="1", DJANGO_ENV="test")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "1"


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_behind_the_ingress_the_client_address_is_the_one_the_ingress_saw(department):
    from rest_framework.test import APIClient

    from accounts.services import api_key_create

    _key, plaintext = api_key_create(department=department, name="office", ip_allowlist=["198.51.100.0/24"])
    client = APIClient(REMOTE_ADDR="10.0.0.2")  # the ingress controller's pod
    client.credentials(HTTP_X_API_KEY=plaintext)
    assert client.get("/api/v1/customers/", HTTP_X_FORWARDED_FOR="198.51.100.7").status_code == 200
    # a client cannot choose its address: the ingress appends the one it saw
    spoofed = client.get("/api/v1/customers/", HTTP_X_FORWARDED_FOR="198.51.100.7, 203.0.113.5")
    assert spoofed.status_code == 403


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_admin_audit_entries_name_the_address_the_ingress_saw(admin_user, register_model):
    """Every admin and staff page builds its actor with accounts.context (the model admin used the proxy's address)."""
    from accounts.models import AuditLogEntry

    register_model(activate=True)
    challenger = register_model(activate=False)
    client = Client(REMOTE_ADDR="10.0.0.2")  # the ingress controller's pod
    client.force_login(admin_user)
    client.post(
        "/admin/modelregistry/modelversion/",
        {"action": "start_ab_test", "_selected_action": [challenger.pk]},
        HTTP_X_FORWARDED_FOR="203.0.113.5, 198.51.100.7",
    )

    entry = AuditLogEntry.objects.get(action="model.ab_test_start")
    assert entry.ip_address == "198.51.100.7"
    assert entry.actor_user == admin_user


# --- /metrics -----------------------------------------------------------------------------------


def test_web_metrics_are_not_served_to_public_addresses():
    assert Client(REMOTE_ADDR="203.0.113.7").get("/metrics").status_code == 403
    assert Client(REMOTE_ADDR="10.4.0.12").get("/metrics").status_code == 200  # a cluster's Prometheus
    with override_settings(TRUSTED_PROXY_COUNT=1):
        via_ingress = Client(REMOTE_ADDR="10.0.0.2").get("/metrics", HTTP_X_FORWARDED_FOR="10.0.0.9, 203.0.113.7")
        assert via_ingress.status_code == 403
    with override_settings(METRICS_ALLOWED_NETWORKS=["0.0.0.0/0"], METRICS_TOKEN="t0ken"):
        assert Client(REMOTE_ADDR="203.0.113.7").get("/metrics").status_code == 401
        assert Client(REMOTE_ADDR="203.0.113.7").get("/metrics", HTTP_AUTHORIZATION="Bearer t0ken").status_code == 200


def _worker_get(app, path: str, **environ: str) -> tuple[str, bytes]:  # type: ignore[no-untyped-def]
    seen: dict[str, str] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"] = status

    base = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "9808", "wsgi.input": io.BytesIO(), "REMOTE_ADDR": "127.0.0.1"}
    body = b"".join(app({**base, **environ}, start_response))
    return seen["status"], body


def test_worker_metrics_follow_the_same_rule():
    from prometheus_client import CollectorRegistry

    from churn_platform.celery import app as celery_app
    from churn_platform.worker_http import worker_http_app

    app = worker_http_app(celery_app, CollectorRegistry())
    assert _worker_get(app, "/metrics")[0].startswith("200")
    assert _worker_get(app, "/metrics", REMOTE_ADDR="203.0.113.7")[0].startswith("403")
    with override_settings(METRICS_TOKEN="w0rker"):
        assert _worker_get(app, "/metrics")[0].startswith("401")
        assert _worker_get(app, "/metrics", HTTP_AUTHORIZATION="Bearer w0rker")[0].startswith("200")
    assert _worker_get(app, "/healthz", REMOTE_ADDR="203.0.113.7")[0].startswith("200")  # probes stay open


def test_worker_metrics_listen_on_loopback_unless_configured(monkeypatch):
    from churn_platform import celery as worker
    from churn_platform import worker_http

    bound: list[str] = []
    monkeypatch.setattr(worker_http, "serve", lambda *a, address, port: bound.append(address))
    monkeypatch.setenv("CELERY_METRICS_PORT", "9999")
    monkeypatch.delenv("CELERY_METRICS_ADDRESS", raising=False)
    worker._serve_worker_http()
    monkeypatch.setenv("CELERY_METRICS_ADDRESS", "0.0.0.0")
    worker._serve_worker_http()
    assert bound == ["127.0.0.1", "0.0.0.0"]


# --- the development key --------------------------------------------------------------------------


def test_development_signs_with_a_random_key_per_checkout_kept_in_var(tmp_path):
    first = _settings_in_subprocess("settings.SECRET_KEY", DJANGO_ENV="development", CHURN_VAR_DIR=str(tmp_path))
    again = _settings_in_subprocess("settings.SECRET_KEY", DJANGO_ENV="development", CHURN_VAR_DIR=str(tmp_path))
    other = _settings_in_subprocess("settings.SECRET_KEY", DJANGO_ENV="development", CHURN_VAR_DIR=str(tmp_path / "b"))
    assert first.returncode == 0, first.stderr
    key = first.stdout.strip().splitlines()[-1]
    assert len(key) >= 50
    assert key == again.stdout.strip().splitlines()[-1]
    assert key != other.stdout.strip().splitlines()[-1]
    assert key not in (ROOT / "churn_platform" / "settings.py").read_text()
    stored = tmp_path / "development-secret-key"
    assert stored.read_text().strip() == key
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    jwt = _settings_in_subprocess("settings.SIMPLE_JWT['SIGNING_KEY']", DJANGO_ENV="development",
                                  CHURN_VAR_DIR=str(tmp_path))
    assert jwt.stdout.strip().splitlines()[-1] == key


def test_production_still_refuses_to_start_without_a_real_key(tmp_path):
    done = _settings_in_subprocess("settings.SECRET_KEY", DJANGO_ENV="production", CHURN_VAR_DIR=str(tmp_path),
                                   DJANGO_ALLOWED_HOSTS="churn.example.com")
    assert done.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in done.stderr
    assert not (tmp_path / "development-secret-key").exists()


# --- Content-Security-Policy ------------------------------------------------------------------------


def test_staff_admin_and_sign_in_pages_carry_a_content_security_policy(client):
    for path in ("/accounts/login/", "/admin/login/"):
        policy = client.get(path)["Content-Security-Policy"]
        assert "default-src 'self'" in policy, path
        assert "script-src 'self'" in policy, path
        assert "unsafe-inline" not in policy, path
        assert "frame-ancestors 'none'" in policy, path
    login = client.get("/accounts/login/").content.decode()
    for inline in ("<script>", " style=", "onsubmit="):
        assert inline not in login
