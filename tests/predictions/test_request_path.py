"""The single-score request's round trips (issue 13.3): one to Redis, few to PostgreSQL.

Counted at the socket: each redis-py ``send_packed_command`` is one round trip (a pipeline is
one), each executed SQL statement string one trip to the database.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from redis.connection import AbstractConnection

from accounts.models import AuditLogEntry
from customers.models import Customer
from modelregistry import loader
from predictions.models import Prediction
from tests.factories import CustomerFactory, record

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif("Redis" not in settings.CACHES["default"]["BACKEND"], reason="needs the Redis cache"),
]

URL = "/api/v1/predictions/"


@pytest.fixture
def redis_trips(monkeypatch):
    sent: list[bytes] = []
    original = AbstractConnection.send_packed_command

    def counting(self, command, *args, **kwargs):  # type: ignore[no-untyped-def]
        sent.append(b"".join(command) if isinstance(command, list) else command)
        return original(self, command, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    return sent


def _warm(key_client) -> None:  # type: ignore[no-untyped-def]
    # The first call loads the model and caches the key's record.
    assert key_client.post(URL, record(customer_id="WARM-1"), format="json").status_code == 201


def test_a_keyed_score_makes_one_redis_round_trip_even_when_the_model_stamp_is_due(
    key_client, active_version, redis_trips
):
    _warm(key_client)
    redis_trips.clear()

    assert key_client.post(URL, record(customer_id="C-1"), format="json").status_code == 201
    assert len(redis_trips) == 1, redis_trips

    # A second later the process re-checks the active version: the stamp rides the same trip.
    loader.forget_local()
    redis_trips.clear()
    assert key_client.post(URL, record(customer_id="C-2"), format="json").status_code == 201
    assert len(redis_trips) == 1, redis_trips
    assert loader.STAMP_KEY.encode() in redis_trips[0]


def test_a_promotion_reaches_the_process_through_the_stamp_that_rides_the_key_lookup(
    key_client, active_version, register_model, redis_trips, django_capture_on_commit_callbacks
):
    _warm(key_client)
    with django_capture_on_commit_callbacks(execute=True):
        newer = register_model(activate=True)  # publishes the new stamp once committed
    redis_trips.clear()

    body = key_client.post(URL, record(customer_id="C-3"), format="json").json()

    assert body["model_version"] == newer.version != active_version.version
    assert len(redis_trips) == 1, redis_trips


def test_an_address_past_the_failed_key_limit_is_refused_on_the_same_round_trip(
    key_client, api_client, active_version, settings, redis_trips
):
    settings.API_KEY_MAX_FAILURES_PER_MINUTE = 3
    _warm(key_client)
    prefix = key_client._credentials["HTTP_X_API_KEY"].split("_")[1]
    for _ in range(3):
        api_client.credentials(HTTP_X_API_KEY=f"chp_{prefix}_{'wrong-secret-' * 2}")
        assert api_client.post(URL, record(), format="json").status_code == 401
    redis_trips.clear()

    refused = key_client.post(URL, record(), format="json")

    assert refused.status_code == 429, refused.content
    assert len(redis_trips) == 1


ON_POSTGRESQL = pytest.mark.skipif(connection.vendor != "postgresql", reason="one-statement writes need PostgreSQL")


@ON_POSTGRESQL
def test_scoring_a_stored_customer_reads_it_and_writes_the_prediction_in_two_statements(key_client, active_version):
    _warm(key_client)
    CustomerFactory(customer_id="STORED-1")
    with CaptureQueriesContext(connection) as queries:
        response = key_client.post(URL, {"customer_id": "STORED-1"}, format="json")
    assert response.status_code == 201
    assert len(queries) == 2, [q["sql"][:120] for q in queries]
    assert Prediction.objects.filter(customer_id="STORED-1").count() == 1


@ON_POSTGRESQL
def test_a_full_record_stores_customer_audit_entry_and_prediction_in_one_statement(key_client, active_version):
    _warm(key_client)
    with CaptureQueriesContext(connection) as queries:
        created = key_client.post(URL, record(customer_id="ONE-1"), format="json")
    assert created.status_code == 201
    assert len(queries) == 1, [q["sql"][:120] for q in queries]
    assert Customer.objects.filter(customer_id="ONE-1").exists()
    assert list(AuditLogEntry.objects.filter(object_id="ONE-1").values_list("action", flat=True)) == [
        "customer.create"
    ]
    assert Prediction.objects.filter(prediction_id=created.json()["prediction_id"]).exists()

    # The same record again: one statement, no customer write, no audit entry; a change: one of each.
    with CaptureQueriesContext(connection) as queries:
        key_client.post(URL, record(customer_id="ONE-1"), format="json")
        key_client.post(URL, record(customer_id="ONE-1", tenure_months=30, total_charges=2100.0), format="json")
    assert len(queries) == 2
    assert list(AuditLogEntry.objects.filter(object_id="ONE-1").order_by("pk").values_list("action", flat=True)) == [
        "customer.create", "customer.update"
    ]
    assert Customer.objects.get(customer_id="ONE-1").tenure_months == 30
    assert Prediction.objects.filter(customer_id="ONE-1").count() == 3
