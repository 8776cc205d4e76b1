"""The Redis stream consumer against the real Redis (REDIS_URL)."""

from __future__ import annotations

import json
import os
import time
import uuid
from unittest import mock

import pytest
import redis
from django.core.management import call_command
from django.db import transaction

from accounts.services import SYSTEM
from customers.ingestion.services import data_source_save
from customers.ingestion.sources.stream import EventConsumer
from customers.models import Customer, CustomerEvent, DataSource, EventStatus, RunStatus, SourceKind
from tests.factories import CustomerFactory, record

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():  # type: ignore[no-untyped-def]
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("REDIS_URL is not set")
    return redis.Redis.from_url(url, decode_responses=True)


@pytest.fixture
def stream_source(client):  # type: ignore[no-untyped-def]
    key = f"test:events:{uuid.uuid4().hex[:8]}"
    source = data_source_save(
        source=DataSource(
            name=f"events-{key[-8:]}",
            kind=SourceKind.STREAM,
            collection=key,
            rescore_on_change=True,
            options={"redis_url": os.environ["REDIS_URL"], "block_ms": 50},
        ),
        actor=SYSTEM,
    )
    yield source
    client.delete(key, f"{key}:dead")


def event(client, source, kind: str, customer_id: str, data: dict | None = None, **extra: str) -> str:  # type: ignore[no-untyped-def]
    fields = {"type": kind, "customer_id": customer_id, "data": json.dumps(data or {}), **extra}
    return client.xadd(source.collection, fields)


def test_events_update_customers_record_signals_and_ask_for_re_scoring(
    client, stream_source, django_capture_on_commit_callbacks
):
    CustomerFactory(customer_id="EV-1", contract_type="Month-to-month")
    event(client, stream_source, "customer.updated", "EV-NEW", record(customer_id="EV-NEW"))
    event(client, stream_source, "contract.changed", "EV-1", {"contract_type": "Two year"})
    event(client, stream_source, "payment.failed", "EV-1", {"amount": 42.5}, occurred_at="2025-03-01T10:00:00Z")
    event(client, stream_source, "support.ticket_opened", "EV-1", {"ticket": "T-9"})
    event(client, stream_source, "plan.changed", "EV-1", {"contract_type": "One year"})  # not a plan field
    event(client, stream_source, "customer.updated", "EV-2", {"tenure_months": 5})  # unknown and partial
    event(client, stream_source, "shipment.lost", "EV-1")

    with (
        mock.patch("customers.ingestion.pipeline.current_app.send_task") as send_task,
        django_capture_on_commit_callbacks(execute=True),
    ):
        handled = EventConsumer(stream_source, consumer="test-1").run(until_idle=True)

    assert handled == 7
    assert Customer.objects.get(customer_id="EV-1").contract_type == "Two year"
    assert Customer.objects.get(customer_id="EV-NEW").source == f"stream:{stream_source.name}"
    applied = CustomerEvent.objects.filter(status=EventStatus.APPLIED).order_by("entry_id")
    assert [e.event_type for e in applied] == [
        "customer.updated",
        "contract.changed",
        "payment.failed",
        "support.ticket_opened",
    ]
    assert applied[2].data == {"amount": 42.5}
    assert applied[2].occurred_at.isoformat() == "2025-03-01T10:00:00+00:00"
    # every entry acknowledged; the three bad ones dead-lettered with their reasons
    assert client.xpending(stream_source.collection, "churn-ingestion")["pending"] == 0
    dead = client.xrange(f"{stream_source.collection}:dead")
    assert [d[1]["type"] for d in dead] == ["plan.changed", "customer.updated", "shipment.lost"]
    assert "contract_type" in json.loads(dead[0][1]["errors"])
    assert "partner" in json.loads(dead[1][1]["errors"])
    # one run for the session, closed when the consumer stopped
    run = stream_source.runs.get()
    assert run.status == RunStatus.PARTIALLY_SUCCEEDED
    assert run.counts == {"read": 7, "created": 1, "updated": 1, "unchanged": 2, "rejected": 3}
    assert run.quarantined_rows.count() == 3
    # re-scoring was asked for, per kind of event, after the commit
    reasons = {c.kwargs["kwargs"]["reason"]: c.kwargs["kwargs"]["customer_ids"] for c in send_task.call_args_list}
    assert reasons == {
        "event:customer.updated": ["EV-NEW"],
        "event:contract.changed": ["EV-1"],
        "event:payment.failed": ["EV-1"],
        "event:support.ticket_opened": ["EV-1"],
    }
    assert {c.args[0] for c in send_task.call_args_list} == {"predictions.tasks.rescore_customers"}


def test_entries_of_a_crashed_consumer_are_reclaimed_and_applied_once(client, stream_source):
    CustomerFactory(customer_id="CR-1", tenure_months=12)
    first = event(client, stream_source, "customer.updated", "CR-1", {"tenure_months": 13, "total_charges": 1105.0})
    second = event(client, stream_source, "payment.failed", "CR-1")
    consumer = EventConsumer(stream_source, consumer="crashed")
    consumer.ensure_group()
    # the crashed consumer had read both entries and committed the first, then died before acking
    client.xreadgroup("churn-ingestion", "crashed", {stream_source.collection: ">"}, count=10)
    with transaction.atomic():
        consumer.apply(first, client.xrange(stream_source.collection, first, first)[0][1], consumer._current_run())
    time.sleep(0.05)

    survivor = EventConsumer(stream_source, consumer="survivor")
    survivor.conf = type(survivor.conf)(**{**survivor.conf.__dict__, "claim_idle_ms": 10})
    handled = survivor.run(until_idle=True)

    assert handled == 2
    assert client.xpending(stream_source.collection, "churn-ingestion")["pending"] == 0
    assert CustomerEvent.objects.filter(entry_id=first).count() == 1  # not applied twice
    assert CustomerEvent.objects.filter(entry_id=second, event_type="payment.failed").exists()
    assert Customer.objects.get(customer_id="CR-1").tenure_months == 13


def test_an_entry_that_keeps_failing_is_dead_lettered(client, stream_source):
    CustomerFactory(customer_id="PO-1")
    poison = event(client, stream_source, "payment.failed", "PO-1")
    consumer = EventConsumer(stream_source, consumer="c")
    consumer.ensure_group()
    # delivered again and again, never acknowledged (the consumer kept crashing on it)
    client.xreadgroup("churn-ingestion", "c", {stream_source.collection: ">"})
    for _ in range(5):
        client.xclaim(stream_source.collection, "churn-ingestion", "c", 0, [poison])

    consumer.run(until_idle=True)

    dead = client.xrange(f"{stream_source.collection}:dead")
    assert len(dead) == 1
    assert "Delivered" in dead[0][1]["errors"]
    assert dead[0][1]["original_id"] == poison
    assert client.xpending(stream_source.collection, "churn-ingestion")["pending"] == 0


def test_consume_events_and_run_source_commands(client, stream_source, capsys):
    event(client, stream_source, "customer.updated", "CMD-1", record(customer_id="CMD-1"))
    call_command("consume_events", "--source", stream_source.name, "--until-idle")
    assert "Processed 1 events." in capsys.readouterr().out
    event(client, stream_source, "customer.updated", "CMD-2", record(customer_id="CMD-2"))
    call_command("run_source", stream_source.name)
    assert "created 1" in capsys.readouterr().out
    assert set(Customer.objects.values_list("customer_id", flat=True)) == {"CMD-1", "CMD-2"}


def test_a_stream_source_processes_what_is_waiting_from_the_api_and_the_admin(
    client, stream_source, key_client, admin_user, department
):
    # the API key's department owns the source
    DataSource.objects.filter(pk=stream_source.pk).update(department=department)
    event(client, stream_source, "customer.updated", "API-1", record(customer_id="API-1"))
    response = key_client.post(f"/api/v1/data-sources/{stream_source.pk}/run/")
    assert response.status_code == 200
    assert response.json()["counts"]["created"] == 1
    assert key_client.post(f"/api/v1/data-sources/{stream_source.pk}/run/").status_code == 204

    event(client, stream_source, "customer.updated", "ADM-1", record(customer_id="ADM-1"))
    from django.test import Client

    browser = Client()
    browser.force_login(admin_user)
    page = browser.post(
        "/admin/customers/datasource/", {"action": "run_now", "_selected_action": [stream_source.pk]}, follow=True
    )
    assert b"processed 1 events" in page.content
    assert Customer.objects.filter(customer_id__in=["API-1", "ADM-1"]).count() == 2
    # the one-off consumers leave no trace in the group
    assert [c["name"] for c in client.xinfo_consumers(stream_source.collection, "churn-ingestion")] == []
