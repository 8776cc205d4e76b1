"""Logs carry the request id, in the web process and in the tasks a request starts, and never a secret."""

from __future__ import annotations

import io
import json
import logging

import pytest
from celery import shared_task
from django.conf import settings

from churn_infra.logging import (
    JsonFormatter,
    RequestIdFilter,
    TextFormatter,
    current_request_id,
    redact,
    set_request_id,
)

API_KEY = "chp_0123456789ab_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcd"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIiwiZXhwIjoxfQ.c2lnbmF0dXJlLXZhbHVl"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"GET /api/v1/customers/?api_key={API_KEY}&page=2", API_KEY),
        (f"key {API_KEY} was used", API_KEY),
        (f"Authorization: Bearer {JWT}", JWT),
        ("Authorization: Basic dXNlcjpzM2NyZXQ=", "dXNlcjpzM2NyZXQ="),
        ("{'HTTP_AUTHORIZATION': 'Token abcdef0123456789'}", "abcdef0123456789"),
        ("{'X-API-Key': 'not-even-a-valid-key'}", "not-even-a-valid-key"),
        (json.dumps({"username": "bob", "password": "correct horse battery"}), "correct horse battery"),
        (json.dumps(json.dumps({"password": "hunter2!"})), "hunter2!"),
        ("password=hunter2&next=/staff/", "hunter2"),
        (f"refresh token {JWT} rotated", JWT),
        ("connecting to postgres://churn:s3cr3t-pw@db:5432/churn", "s3cr3t-pw"),
        ('{"access_token": "abc.def.ghi", "client_secret": "shh-very-secret"}', "shh-very-secret"),
    ],
)
def test_redact_removes_the_secret(text, secret):
    cleaned = redact(text)
    assert secret not in cleaned
    assert "[REDACTED]" in cleaned


@pytest.mark.parametrize(
    "text",
    ["Invalid password for user bob", "token refreshed for key test-client", "Serving model 20250101-a",
     "GET /api/v1/predictions/?risk_level=high 200"],
)
def test_redact_leaves_ordinary_text_alone(text):
    assert redact(text) == text


def test_redact_removes_the_configured_secret_values():
    assert settings.SECRET_KEY not in redact(f"settings dump: SECRET={settings.SECRET_KEY}")
    assert settings.SECRET_KEY not in redact(f"key is {settings.SECRET_KEY}.")


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("churn.test", logging.WARNING, __file__, 1, message, args or None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    RequestIdFilter().filter(record)
    return record


def test_json_lines_carry_the_request_id_and_no_secret_in_message_args_extras_or_traceback():
    formatter = JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
    )
    set_request_id("req-abc-12345")
    try:
        try:
            raise ValueError(f"bad key {API_KEY}")
        except ValueError:
            import sys

            record = _record("caller sent %s", f"X-API-Key: {API_KEY}", headers={"Authorization": f"Bearer {JWT}"})
            record.exc_info = sys.exc_info()
        line = formatter.format(record)
    finally:
        set_request_id(None)
    body = json.loads(line)
    assert body["request_id"] == "req-abc-12345"
    assert body["level"] == "WARNING"
    assert body["logger"] == "churn.test"
    assert API_KEY not in line
    assert JWT not in line
    assert "ValueError" in body["exc_info"]


def test_text_lines_are_redacted_too():
    formatter = TextFormatter("%(levelname)s [%(request_id)s] %(message)s")
    line = formatter.format(_record("login with password=%s", "hunter2"))
    assert line == "WARNING [-] login with password=[REDACTED]"


def test_django_request_records_take_the_request_id_from_the_request():
    class FakeRequest:
        request_id = "req-from-request-1"

    record = _record("Unauthorized: /api/v1/customers/", request=FakeRequest())
    assert record.request_id == "req-from-request-1"


def test_gunicorn_access_records_take_the_request_id_from_the_response_header():
    record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, "%(r)s", None, None)
    record.args = {"r": "GET / HTTP/1.1", "{x-request-id}o": "req-access-777", "U": "/", "s": "200", "m": "GET",
                   "D": 1500, "B": 10, "h": "127.0.0.1", "a": "curl"}
    RequestIdFilter().filter(record)
    body = json.loads(JsonFormatter("%(message)s %(request_id)s").format(record))
    assert body["request_id"] == "req-access-777"
    assert body["http"] == {"method": "GET", "path": "/", "status": 200, "duration_ms": 1.5, "bytes": 10,
                            "remote": "127.0.0.1", "user_agent": "curl"}


@shared_task(name="tests.ops.remember_request_id")
def remember_request_id() -> str | None:
    return current_request_id()


@pytest.mark.django_db
def test_an_eager_task_sees_its_request_id_and_leaves_it_in_place(client, caplog):
    # given a request id bound by a request
    set_request_id("req-eager-0001")
    try:
        # when the request starts a task in-process
        seen = remember_request_id.delay().get()
        # then the task saw the request's id and the request still has it afterwards
        assert seen == "req-eager-0001"
        assert current_request_id() == "req-eager-0001"
    finally:
        set_request_id(None)


@pytest.mark.django_db
def test_every_log_line_of_a_request_carries_its_id(client, api_key):
    # given a JSON handler on the root logger, like production
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter("%(levelname)s %(name)s %(message)s %(request_id)s"))
    logging.getLogger().addHandler(handler)
    try:
        # when a request fails authentication with a secret-looking key
        response = client.get(
            "/api/v1/customers/", HTTP_X_REQUEST_ID="req-log-test-42", HTTP_X_API_KEY=API_KEY,
        )
    finally:
        logging.getLogger().removeHandler(handler)
    assert response.status_code == 401
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    # then its log lines (django.request's warning among them) carry the id and not the key
    assert any(line["name"] == "django.request" for line in lines)
    assert all(line["request_id"] == "req-log-test-42" for line in lines)
    assert API_KEY not in stream.getvalue()
