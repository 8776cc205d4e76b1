"""Bounded ingestion: a cap on quarantine per run, fail fast on a mostly invalid start, source timeouts."""

from __future__ import annotations

import time
import uuid

import pytest

from accounts.services import SYSTEM
from customers.ingestion.services import data_source_run_now, data_source_save
from customers.models import DataSource, RunStatus, SourceKind
from tests.customers.ingestion.conftest import telco, telco_csv

pytestmark = pytest.mark.django_db


def test_quarantine_keeps_the_first_rows_in_full_and_counts_the_rest(settings, upload, key_client):
    settings.INGESTION_QUARANTINE_MAX_ROWS = 3
    settings.INGESTION_FAIL_FAST_MIN_ROWS = 10_000  # not the subject here
    rows = [telco(f"BAD-{i}", tenure="-1") for i in range(10)] + [telco(f"OK-{i}") for i in range(2)]

    run = upload(telco_csv(rows))

    assert run.status == RunStatus.PARTIALLY_SUCCEEDED
    assert run.counts == {"read": 12, "created": 2, "updated": 0, "unchanged": 0, "rejected": 10}
    assert run.quarantined_rows.count() == 3
    assert sorted(run.quarantined_rows.values_list("line", flat=True)) == [2, 3, 4]
    assert run.quality["rejected_not_kept"] == 7
    body = key_client.get(f"/api/v1/ingestions/{run.pk}/").json()
    assert body["counts"]["rejected"] == 10
    assert body["counts"]["rejected_not_kept"] == 7


def test_a_run_whose_first_chunk_is_mostly_invalid_stops_there_with_a_clear_error(settings, upload):
    settings.INGESTION_CHUNK_ROWS = 10
    settings.INGESTION_FAIL_FAST_MIN_ROWS = 10
    first = [telco(f"BAD-{i}", tenure="-1") for i in range(8)] + [telco("OK-1"), telco("OK-2")]
    rest = [telco(f"LATER-{i}", tenure="-1") for i in range(40)]

    run = upload(telco_csv(first + rest))

    assert run.status == RunStatus.FAILED
    assert run.error.startswith("Stopped after the first 10 rows: 8 of them (80%) were refused")
    assert run.read_count == 10  # nothing after the first chunk was read into the database
    assert run.quarantined_rows.count() == 8  # kept, so the reasons can be read


def test_a_run_that_is_only_partly_invalid_goes_on(settings, upload):
    settings.INGESTION_CHUNK_ROWS = 10
    settings.INGESTION_FAIL_FAST_MIN_ROWS = 10
    rows = [telco(f"BAD-{i}", tenure="-1") for i in range(5)] + [telco(f"OK-{i}") for i in range(25)]
    run = upload(telco_csv(rows))
    assert run.status == RunStatus.PARTIALLY_SUCCEEDED
    assert run.read_count == 30


# --- timeouts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [SourceKind.HTTP, SourceKind.MYSQL, SourceKind.POSTGRESQL])
def test_a_source_at_a_silent_port_is_given_up_within_its_timeout(kind, tcp_port):
    silent_port = tcp_port()
    fields = (
        {"url": f"http://127.0.0.1:{silent_port}/customers", "max_retries": 0}
        if kind == SourceKind.HTTP
        else {"host": "127.0.0.1", "port": silent_port, "database": "x", "username": "x", "query": "SELECT 1"}
    )
    source = data_source_save(
        source=DataSource(name=f"silent-{uuid.uuid4().hex[:6]}", kind=kind, timeout_seconds=3, **fields), actor=SYSTEM
    )
    started = time.monotonic()
    run = data_source_run_now(source_id=source.pk)
    elapsed = time.monotonic() - started

    assert run.status == RunStatus.FAILED
    assert "Could not connect to 127.0.0.1." in run.error
    assert elapsed < 3 + 1.5, f"{kind} took {elapsed:.1f} s with timeout_seconds=3"


def test_timeout_seconds_is_capped_at_300(key_client):
    body = {"name": "slow", "kind": "http", "url": "http://127.0.0.1:9/x", "timeout_seconds": 301}
    response = key_client.post("/api/v1/data-sources/", body, format="json")
    assert response.status_code == 400
    assert "At most 300 seconds" in " ".join(response.json()["errors"]["timeout_seconds"])
    response = key_client.post("/api/v1/data-sources/", {**body, "timeout_seconds": 300}, format="json")
    assert response.status_code == 201, response.content
