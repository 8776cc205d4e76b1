"""Request ids that follow a request through logs and into the Celery tasks it starts, and log
formatters that never write a secret.

Every record gets ``request_id`` (the request's, the task's inherited one, or "-"). Both
formatters pass their output through ``redact``: API keys, bearer and JWT tokens, passwords,
Authorization headers, credentials in URLs and the configured secret values are replaced by
``[REDACTED]`` wherever they appear, including exception text and extra fields.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from contextvars import ContextVar, Token
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

REDACTED = "[REDACTED]"

# Python warnings would otherwise be printed raw to stderr, breaking one-JSON-object-per-line logs;
# this module is loaded by every process's logging configuration.
logging.captureWarnings(True)


def current_request_id() -> str | None:
    return _request_id.get()


def set_request_id(value: str | None) -> None:
    _request_id.set(value)


def bind_request_id(value: str | None) -> Token[str | None]:
    """Set the request id and return a token that ``reset_request_id`` restores the previous one with."""
    return _request_id.set(value)


def reset_request_id(token: Token[str | None]) -> None:
    try:
        _request_id.reset(token)
    except ValueError:  # the token was made in another context (a pool thread): just clear
        _request_id.set(None)


def _access_atoms(record: logging.LogRecord) -> dict[str, Any] | None:
    """Gunicorn's access-log values, when the record is an access-log line."""
    if record.name == "gunicorn.access" and isinstance(record.args, dict):
        return record.args
    return None


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record so formatters can always print it.

    Gunicorn writes its access line after the request's context is gone; the id is then taken
    from the X-Request-ID response header, and for django.request records from the request.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = _request_id.get() or _request_id_of(record) or "-"
        return True


def _request_id_of(record: logging.LogRecord) -> str | None:
    # django.request logs a failed response after the middleware has cleared the context, but
    # passes the request along.
    from_request = getattr(getattr(record, "request", None), "request_id", None)
    if from_request:
        return str(from_request)
    atoms = _access_atoms(record)
    from_header = atoms.get("{x-request-id}o") if atoms else None
    return str(from_header) if from_header not in (None, "", "-") else None


PROBE_PATHS = ("/healthz", "/readyz", "/metrics")


class SkipSuccessfulProbesFilter(logging.Filter):
    """Drops access lines of successful health checks and scrapes, which come every few seconds."""

    def filter(self, record: logging.LogRecord) -> bool:
        atoms = _access_atoms(record)
        return not (atoms and atoms.get("U") in PROBE_PATHS and str(atoms.get("s", "")).startswith("2"))


# --- redaction ------------------------------------------------------------------------------

_SENSITIVE_NAMES = (
    r"password|passwd|pwd|secret|secret_key|client_secret|api[_-]?key|x-api-key|token|access_token|"
    r"refresh_token|id_token|session_?id|sessionid|csrftoken|private_key|signing_key"
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization headers in any spelling: the scheme and the credential both go.
    (
        re.compile(r"(?i)\b((?:proxy-)?authorization|http_authorization)(\\?[\"']?\s*[:=]\s*\\?[\"']?)[^\"'\\\r\n,}]+"),
        rf"\1\2{REDACTED}",
    ),
    # "name": "value" and 'name': 'value' (also JSON-escaped quotes): everything up to the closing quote.
    (
        re.compile(rf"(?i)\b({_SENSITIVE_NAMES})(\\?[\"']\s*[:=]\s*)(\\?[\"'])(?!\[REDACTED\]).*?(\3)"),
        rf"\1\2\3{REDACTED}\4",
    ),
    # name=value and name: value, unquoted (query strings, form bodies, prose).
    (
        re.compile(rf"(?i)\b({_SENSITIVE_NAMES})(\s*[:=]\s*)(?![\"'\\]|\[REDACTED\])[^\s,&;}}\]\"']+"),
        rf"\1\2{REDACTED}",
    ),
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9\-._~+/]{8,}=*"), rf"\1\2{REDACTED}"),
    # The platform's API keys: chp_<prefix>_<secret>.
    (re.compile(r"\bchp_[A-Za-z0-9]+_[A-Za-z0-9_\-]{8,}"), f"chp_{REDACTED}"),
    # JSON Web Tokens anywhere (three base64url parts, the first two JSON objects).
    (re.compile(r"\beyJ[A-Za-z0-9_\-]+\.eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"), REDACTED),
    # user:password@host in connection URLs.
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/\s@]*:)[^@\s/]+@"), rf"\1{REDACTED}@"),
)


def _configured_secrets() -> list[str]:
    """Values from settings that must never be printed, longest first (a key may contain another)."""
    try:
        from django.conf import settings

        if not settings.configured:
            return []
        values = [settings.SECRET_KEY, settings.SIMPLE_JWT.get("SIGNING_KEY", "")]
        values.append(getattr(settings, "METRICS_TOKEN", ""))
        values += [db.get("PASSWORD", "") for db in settings.DATABASES.values()]
        values += list(getattr(settings, "DATA_SOURCE_ENCRYPTION_KEYS", []))
    except Exception:  # logging must work before and without settings
        return []
    return sorted({str(v) for v in values if v and len(str(v)) >= 8}, key=len, reverse=True)


def redact(text: str) -> str:
    """The text with every secret this module recognises replaced by [REDACTED]."""
    if not text:
        return text
    for secret in _configured_secrets():
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    # Anything else is printed with str() by the JSON encoder; redact that text instead.
    return redact(str(value))


class JsonFormatter(_BaseJsonFormatter):
    """One JSON object per line, with the request id, process and host, and secrets removed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault(
            "static_fields", {"service": os.environ.get("CHURN_SERVICE_NAME", "churn"), "host": socket.gethostname()}
        )
        super().__init__(*args, **kwargs)

    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_record, record, message_dict)
        atoms = _access_atoms(record)
        if atoms:
            log_record["http"] = {
                "method": atoms.get("m"),
                "path": atoms.get("U"),
                "status": int(atoms["s"]) if str(atoms.get("s", "")).isdigit() else atoms.get("s"),
                "duration_ms": round(float(atoms.get("D", 0)) / 1000, 1),
                "bytes": atoms.get("B"),
                "remote": atoms.get("h"),
                "user_agent": atoms.get("a"),
            }

    def process_log_record(self, log_record: dict[str, Any]) -> dict[str, Any]:
        return {k: _redact_value(v) for k, v in super().process_log_record(log_record).items()}


class TextFormatter(logging.Formatter):
    """The development format, with secrets removed like the JSON one."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
