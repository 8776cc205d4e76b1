"""Readers for configured data sources: databases, HTTP APIs (and the Redis stream consumer)."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from churn_infra.schedules import CRON_HELP, parse_cron
from customers.ingestion.egress import EgressRefused, checked_address
from customers.ingestion.readers.chunks import Reader
from customers.models import DataSource, SourceKind

# connect plus read never take longer than this, whatever a source's timeout_seconds says.
MAX_TIMEOUT_SECONDS = 300


class SourceError(Exception):
    """The source could not be read (connection refused, bad query, HTTP error); the message says why."""


def open_source_reader(source: DataSource, *, chunk_rows: int) -> Reader:
    """The reader for a database or HTTP source (streams are consumed by consume_events instead)."""
    if source.kind == SourceKind.HTTP:
        from customers.ingestion.sources.http import HttpReader

        return HttpReader(source)
    if source.kind in (SourceKind.POSTGRESQL, SourceKind.MYSQL):
        from customers.ingestion.sources.database import SqlReader

        return SqlReader(source)
    if source.kind == SourceKind.MONGODB:
        from customers.ingestion.sources.database import MongoReader

        return MongoReader(source)
    raise SourceError(f"A {source.get_kind_display()} source is read by the consume_events command, not run once.")


def connect_address(host: str, port: int | None = None) -> str:
    """The checked address a driver connects to for ``host`` (egress policy), or SourceError."""
    try:
        return checked_address(host, port)
    except EgressRefused as exc:
        raise SourceError(str(exc)) from None


def cannot_connect(host: str) -> SourceError:
    """The one message for a connection that failed, whatever the driver said: nothing about ports."""
    return SourceError(f"Could not connect to {host}.")


def timeouts(source: DataSource) -> tuple[float, float]:
    """(connect, read) seconds: together within the source's timeout_seconds, itself at most the cap."""
    total = float(min(source.timeout_seconds or 1, MAX_TIMEOUT_SECONDS))
    connect = max(min(total / 3, 10.0), 0.5)
    return connect, max(total - connect, 0.5)


def egress_hosts(source: DataSource) -> dict[str, str]:
    """Field -> host that a source would connect to (the stream's own Redis, REDIS_URL, is not checked)."""
    hosts = {}
    if source.kind == SourceKind.HTTP and source.url:
        hosts["url"] = urlsplit(source.url).hostname or ""
    elif source.kind in (SourceKind.POSTGRESQL, SourceKind.MYSQL, SourceKind.MONGODB) and source.host:
        hosts["host"] = source.host
    elif source.kind == SourceKind.STREAM and isinstance(source.options, dict) and source.options.get("redis_url"):
        hosts["options"] = urlsplit(str(source.options["redis_url"])).hostname or ""
    return hosts


def encode_cursor(value: Any) -> Any:
    """A cursor value as JSON, keeping its type so the next pull compares like with like."""
    if isinstance(value, datetime):
        return {"type": "datetime", "value": value.isoformat()}
    if isinstance(value, date):
        return {"type": "date", "value": value.isoformat()}
    if isinstance(value, Decimal):
        return {"type": "decimal", "value": str(value)}
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


def decode_cursor(value: Any) -> Any:
    if isinstance(value, dict) and "type" in value:
        kind, text = value["type"], value["value"]
        if kind == "datetime":
            return datetime.fromisoformat(text)
        if kind == "date":
            return date.fromisoformat(text)
        if kind == "decimal":
            return Decimal(text)
    return value


def configuration_errors(source: DataSource) -> dict[str, list[str]]:
    """What is wrong with a source's settings, by field (empty when it can be run)."""
    from customers.ingestion.mapping import MappingError, validate_mapping

    errors: dict[str, list[str]] = {}

    def need(name: str, message: str) -> None:
        if not str(getattr(source, name) or "").strip():
            errors.setdefault(name, []).append(message)

    if source.kind == SourceKind.HTTP:
        need("url", "An HTTP source needs the URL of its first page.")
        options = source.options if isinstance(source.options, dict) else {}
        pagination = options.get("pagination", "next_url")
        from customers.ingestion.sources.http import PAGINATION_STYLES

        if pagination not in PAGINATION_STYLES:
            errors.setdefault("options", []).append(f"pagination must be one of {', '.join(PAGINATION_STYLES)}.")
    elif source.kind in (SourceKind.POSTGRESQL, SourceKind.MYSQL):
        need("host", "A database source needs a host.")
        need("query", "A database source needs a SELECT query.")
        first = source.query.strip().split(None, 1)[0].lower() if source.query.strip() else ""
        if first and first not in ("select", "with", "table", "values"):
            errors.setdefault("query", []).append("The query must read (SELECT or WITH); it runs read-only.")
    elif source.kind == SourceKind.MONGODB:
        need("host", "A MongoDB source needs a host.")
        need("collection", "A MongoDB source needs a collection.")
        if source.query.strip():
            try:
                document = json.loads(source.query)
            except ValueError:
                document = None
            if not isinstance(document, dict):
                errors.setdefault("query", []).append("The MongoDB filter must be a JSON object.")
    elif source.kind == SourceKind.STREAM:
        need("collection", "A stream source needs the Redis stream key (in collection).")
        if source.schedule.strip():
            errors.setdefault("schedule", []).append("A stream is consumed continuously by consume_events.")
    if not isinstance(source.options, dict):
        errors.setdefault("options", []).append("options must be a JSON object.")
    try:
        validate_mapping(source.column_mapping or {})
    except MappingError as exc:
        errors.setdefault("column_mapping", []).append(str(exc))
    if source.schedule.strip() and source.kind != SourceKind.STREAM:
        try:
            parse_cron(source.schedule)
        except ValueError:
            errors.setdefault("schedule", []).append(f"Must be {CRON_HELP}.")
    if source.timeout_seconds is not None and source.timeout_seconds > MAX_TIMEOUT_SECONDS:
        errors.setdefault("timeout_seconds", []).append(
            f"At most {MAX_TIMEOUT_SECONDS} seconds (connect and read together)."
        )
    for name, host in egress_hosts(source).items():
        try:
            checked_address(host)
        except EgressRefused as exc:
            errors.setdefault(name, []).append(str(exc))
    return errors
