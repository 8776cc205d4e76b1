"""Reads for ingestion: runs, quarantined rows and data sources, scoped to what the actor may see."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet

from accounts.services import Actor
from churn_infra.csv_cells import SafeCsvWriter
from customers.ingestion.mapping import EXTRA_COLUMN, QUARANTINE_COLUMNS, SKIPPED_COLUMNS
from customers.models import DataSource, IngestionRun, QuarantinedRow

_HEADER_SAMPLE = 1_000


def ingestion_run_list(*, actor: Actor) -> QuerySet[IngestionRun]:
    runs = IngestionRun.objects.select_related("data_source").order_by("-created_at")
    if actor.is_superuser:
        return runs
    if actor.department_id is None:
        return runs.none()
    return runs.filter(department_id=actor.department_id)


def data_source_list(*, actor: Actor) -> QuerySet[DataSource]:
    sources = DataSource.objects.select_related("department").order_by("name")
    if actor.is_superuser:
        return sources
    if actor.department_id is None:
        return sources.none()
    return sources.filter(department_id=actor.department_id)


def quarantined_rows(*, run: IngestionRun) -> QuerySet[QuarantinedRow]:
    return QuarantinedRow.objects.filter(run=run).order_by("line", "pk")


class _Echo:
    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def format_errors(errors: dict[str, list[str]]) -> str:
    return " | ".join(f"{name}: {message}" for name, messages in errors.items() for message in messages)


def quarantine_csv(*, run: IngestionRun) -> Iterator[str]:
    """The run's quarantined rows as CSV lines: _line, _reason, _errors, _text, then the raw columns.

    The raw columns are the file's own header (or the keys of the rows), so a download can be
    repaired and uploaded again: the leading underscore columns are skipped on ingestion.
    """
    rows = quarantined_rows(run=run)
    columns: list[str] = [c for c in run.details.get("columns", []) if c not in SKIPPED_COLUMNS]
    if not columns:
        for raw in rows.values_list("raw", flat=True)[:_HEADER_SAMPLE]:
            for key in raw if isinstance(raw, dict) else ():
                if key not in columns and key not in SKIPPED_COLUMNS:
                    columns.append(key)
    known = set(columns)
    writer = SafeCsvWriter(_Echo())
    yield writer.writerow([*QUARANTINE_COLUMNS, *columns, EXTRA_COLUMN])
    for row in rows.iterator(chunk_size=2_000):
        raw = row.raw if isinstance(row.raw, dict) else {"_text": _cell(row.raw)}
        extra = {k: v for k, v in raw.items() if k not in known and k not in SKIPPED_COLUMNS}
        yield writer.writerow(
            [
                row.line,
                row.reason,
                format_errors(row.errors if isinstance(row.errors, dict) else {}),
                _cell(raw.get("_text")),
                *(_cell(raw.get(c)) for c in columns),
                json.dumps(extra) if extra else "",
            ]
        )
