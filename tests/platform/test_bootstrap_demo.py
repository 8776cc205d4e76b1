"""`make run`'s bootstrap: a newcomer's first look has scores, working URLs and stable credentials."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _bootstrap(tmp_path, settings, *args: str) -> str:
    settings.VAR_DIR = tmp_path
    out = io.StringIO()
    call_command("bootstrap_demo", *args, stdout=out)
    return out.getvalue()


def _printed(output: str) -> tuple[str, str]:
    password = re.search(r"password (\S+)", output).group(1)
    key = re.search(r"API key \(department demo\): (\S+)", output).group(1)
    return password, key


def test_bootstrap_scores_the_demo_customers_and_prints_the_served_port(tmp_path, settings, client):
    output = _bootstrap(tmp_path, settings, "--port", "8765")

    from customers.models import Customer
    from predictions.models import Prediction

    # given a fresh installation, the first customer a newcomer opens has a prediction
    assert Customer.objects.count() == 5634
    assert Prediction.objects.values("customer_id").distinct().count() == Customer.objects.count()
    assert "http://127.0.0.1:8765/admin/" in output
    assert ":8000" not in output
    _, key = _printed(output)
    response = client.get("/api/v1/customers/7074-IEVOJ/", HTTP_X_API_KEY=key)
    assert response.status_code == 200
    assert response.json()["latest_prediction"] is not None


def test_running_it_again_keeps_the_key_and_password_unless_asked_to_rotate(tmp_path, settings, client):
    first = _printed(_bootstrap(tmp_path, settings, "--skip-model"))

    again = _printed(_bootstrap(tmp_path, settings, "--skip-model"))

    assert again == first
    assert client.get("/api/v1/auth/whoami/", HTTP_X_API_KEY=first[1]).status_code == 200
    assert client.login(username="admin", password=first[0])

    rotated = _printed(_bootstrap(tmp_path, settings, "--skip-model", "--rotate"))

    assert rotated[0] != first[0]
    assert rotated[1] != first[1]
    assert client.get("/api/v1/auth/whoami/", HTTP_X_API_KEY=first[1]).status_code == 401
    assert client.get("/api/v1/auth/whoami/", HTTP_X_API_KEY=rotated[1]).status_code == 200
    assert (tmp_path / "demo-credentials.json").stat().st_mode & 0o077 == 0
