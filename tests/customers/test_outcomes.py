"""One outcome path: every way an outcome arrives is stored, audited and settles campaign follow-ups.

Each entry point (POST outcomes/, POST outcomes/bulk/, a file's Churn column, a data source's label
column, a stream event carrying churned, the admin form) must settle a treatment follow-up and
show in GET campaigns/{id}/effectiveness/.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import timedelta
from unittest import mock

import pytest
import redis
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnavailable

from accounts.models import AuditLogEntry
from accounts.services import SYSTEM, Actor
from campaigns.models import CampaignTarget
from campaigns.services.outcomes import OUTCOME_BATCH_SIZE, campaign_targets_apply_outcomes
from customers.ingestion.services import data_source_run_now, data_source_save, ingestion_upload
from customers.ingestion.sources.stream import EventConsumer
from customers.models import DataSource, Outcome, SourceKind
from customers.services import OutcomeInput, outcomes_record
from customers.signals import RecordedOutcome, outcomes_recorded
from tests.campaigns.factories import CampaignFactory, TargetFactory, scored_customer
from tests.customers.ingestion.conftest import telco, telco_csv
from tests.customers.ingestion.test_sources import MAPPING, pg_insert, pg_source_db, source_row  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _loopback_sources(settings):  # type: ignore[no-untyped-def]
    """The test's sources (PostgreSQL, Redis) listen on 127.0.0.1: allow it, as an operator would."""
    settings.DATA_SOURCE_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]


@pytest.fixture
def follow_up(department):  # type: ignore[no-untyped-def]
    """A treatment follow-up of an active campaign for customer OC-1, enrolled an hour ago."""
    campaign = CampaignFactory(department=department, status="active")
    target = TargetFactory(campaign=campaign, customer=scored_customer("OC-1", 0.9))
    CampaignTarget.objects.filter(pk=target.pk).update(created_at=timezone.now() - timedelta(hours=1))
    return target


@pytest.fixture
def events():  # type: ignore[no-untyped-def]
    """Every outcomes_recorded event sent, as (source, outcomes)."""
    seen: list[tuple[str, list[RecordedOutcome]]] = []

    def receiver(sender, *, outcomes, source, **_):  # type: ignore[no-untyped-def]
        seen.append((source, list(outcomes)))

    outcomes_recorded.connect(receiver, dispatch_uid="test-outcome-events")
    yield seen
    outcomes_recorded.disconnect(dispatch_uid="test-outcome-events")


def assert_settled(key_client, target, outcome: str) -> None:  # type: ignore[no-untyped-def]
    target.refresh_from_db()
    assert (target.outcome, target.outcome_source) == (outcome, "recorded")
    body = key_client.get(f"/api/v1/campaigns/{target.campaign_id}/effectiveness/").json()
    assert body["treatment"]["outcomes_known"] == 1
    assert body["treatment"]["churned" if outcome == "churned" else "retained"] == 1


def post_outcome(key_client, observed, django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    with django_capture_on_commit_callbacks(execute=True):
        return key_client.post(
            "/api/v1/outcomes/",
            {"customer_id": "OC-1", "churned": True, "observed_at": observed.isoformat()},
            format="json",
        )


def test_post_outcomes_settles_the_follow_up_after_commit(
    key_client, follow_up, events, django_capture_on_commit_callbacks
):
    observed = timezone.now()
    response = post_outcome(key_client, observed, django_capture_on_commit_callbacks)
    assert response.status_code == 201
    assert_settled(key_client, follow_up, "churned")
    assert events == [("api", [RecordedOutcome("OC-1", True, observed)])]
    entry = AuditLogEntry.objects.get(action="outcome.record")
    assert entry.details["channel"] == "api"
    assert entry.object_id == str(Outcome.objects.get().pk)

    # the same observation again: 200, nothing written, no event
    again = post_outcome(key_client, observed, django_capture_on_commit_callbacks)
    assert again.status_code == 200
    assert len(events) == 1


def test_bulk_outcomes_store_the_valid_items_and_report_the_rest(
    key_client, follow_up, events, django_capture_on_commit_callbacks
):
    scored_customer("OC-2", 0.5)
    now = timezone.now()
    earlier = (now - timedelta(days=1)).isoformat()
    items = [
        {"customer_id": "OC-1", "churned": True, "observed_at": now.isoformat()},  # superseded by index 5
        {"customer_id": "OC-2", "churned": True, "observed_at": earlier, "source": "crm"},
        {"customer_id": "NOBODY", "churned": True, "observed_at": now.isoformat()},
        {"customer_id": "OC-2", "churned": "perhaps", "observed_at": now.isoformat()},
        "not an object",
        {"customer_id": "OC-1", "churned": False, "observed_at": now.isoformat()},
        {"customer_id": "OC-1,OC-2", "churned": True, "observed_at": now.isoformat()},
    ]
    with django_capture_on_commit_callbacks(execute=True):
        response = key_client.post("/api/v1/outcomes/bulk/", {"outcomes": items}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["created"], body["updated"], body["unchanged"]) == (2, 0, 0)
    rejected = {r["index"]: r for r in body["rejected"]}
    assert sorted(rejected) == [0, 2, 3, 4, 6]
    assert rejected[6]["errors"] == {"customer_id": ["No customer with this customer_id."]}
    assert "index 5" in rejected[0]["errors"]["observed_at"][0]
    assert rejected[2] == {"index": 2, "customer_id": "NOBODY",
                           "errors": {"customer_id": ["No customer with this customer_id."]}}  # fmt: skip
    assert "churned" in rejected[3]["errors"]
    assert rejected[4]["customer_id"] is None
    assert_settled(key_client, follow_up, "retained")  # the later item for the observation won
    assert len(events) == 1  # one event for the whole request
    source, outcomes = events[0]
    assert source == "bulk"
    assert sorted((o.customer_id, o.churned) for o in outcomes) == [("OC-1", False), ("OC-2", True)]
    entry = AuditLogEntry.objects.get(action="outcome.bulk_record")
    assert (entry.details["created"], entry.details["rejected"], entry.details["channel"]) == (2, 3, "bulk")

    # a repeated observation: same value -> unchanged, the other value -> updated
    with django_capture_on_commit_callbacks(execute=True):
        body = key_client.post("/api/v1/outcomes/bulk/", {"outcomes": [
            {"customer_id": "OC-1", "churned": True, "observed_at": now.isoformat()},
            {"customer_id": "OC-2", "churned": True, "observed_at": earlier, "source": "crm"},
        ]}, format="json").json()  # fmt: skip
    assert (body["created"], body["updated"], body["unchanged"], body["rejected"]) == (0, 1, 1, [])
    assert Outcome.objects.count() == 2
    assert events[-1] == ("bulk", [RecordedOutcome("OC-1", True, now)])
    assert_settled(key_client, follow_up, "churned")


def test_bulk_outcomes_take_at_most_10000_items(key_client):
    response = key_client.post("/api/v1/outcomes/bulk/", {"outcomes": [{}] * 10_001}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["outcomes"] == ["At most 10000 records per request; got 10001."]
    wrong_key = key_client.post("/api/v1/outcomes/bulk/", {"items": []}, format="json")
    assert wrong_key.json()["errors"] == {"items": ["Unknown field."]}


@pytest.fixture
def media(settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }
    settings.INGESTION_CHUNK_ROWS = 2


def test_a_files_churn_column_settles_the_follow_up(
    key_client, follow_up, department, media, events, django_capture_on_commit_callbacks
):
    data = telco_csv([telco("OC-1", Churn="Yes"), telco("OC-2"), telco("OC-3", Churn="No")])
    with django_capture_on_commit_callbacks(execute=True):
        run, _ = ingestion_upload(
            upload=SimpleUploadedFile("labels.csv", data), actor=Actor(department_id=department.pk)
        )
    run.refresh_from_db()
    assert run.details["outcomes_recorded"] == 3
    assert_settled(key_client, follow_up, "churned")
    # one event per committed chunk (two rows a chunk), with the labels written
    assert [source for source, _ in events] == ["file", "file"]
    assert sorted(o.customer_id for _, outcomes in events for o in outcomes) == ["OC-1", "OC-2", "OC-3"]
    entries = AuditLogEntry.objects.filter(action__in=("outcome.record", "outcome.bulk_record"))
    assert sum(e.details["created"] for e in entries) == 3
    assert {e.details["run_id"] for e in entries} == {str(run.pk)}

    # the same labels again add nothing and announce nothing
    with django_capture_on_commit_callbacks(execute=True):
        ingestion_upload(
            upload=SimpleUploadedFile("labels.csv", data), actor=Actor(department_id=department.pk), force=True
        )
    assert Outcome.objects.count() == 3
    assert len(events) == 2


def test_a_fresh_files_labels_are_all_recorded_and_a_later_file_adds_only_the_changed_one(
    department, media, events, django_capture_on_commit_callbacks
):
    # Every customer of each chunk is new: their labels take the service's insert-only path.
    rows = [telco(f"NF-{i}", Churn="Yes" if i % 2 else "No") for i in range(5)]
    with django_capture_on_commit_callbacks(execute=True):
        run, _ = ingestion_upload(
            upload=SimpleUploadedFile("fresh.csv", telco_csv(rows)), actor=Actor(department_id=department.pk)
        )
    run.refresh_from_db()
    assert (run.counts["created"], run.details["outcomes_recorded"]) == (5, 5)
    assert dict(Outcome.objects.values_list("customer__customer_id", "churned")) == {
        f"NF-{i}": bool(i % 2) for i in range(5)
    }
    assert [source for source, _ in events] == ["file", "file", "file"]  # one per committed chunk of two rows
    assert sorted(o.customer_id for _, outcomes in events for o in outcomes) == [f"NF-{i}" for i in range(5)]
    assert all(o.observed_at is not None for _, outcomes in events for o in outcomes)

    # Another file where NF-0 now churned: the customers exist, only the label that differs from
    # the latest outcome is recorded and announced.
    rows[0] = telco("NF-0", Churn="Yes")
    with django_capture_on_commit_callbacks(execute=True):
        later, _ = ingestion_upload(
            upload=SimpleUploadedFile("later.csv", telco_csv(rows)), actor=Actor(department_id=department.pk)
        )
    later.refresh_from_db()
    assert later.details["outcomes_recorded"] == 1
    assert list(
        Outcome.objects.filter(customer__customer_id="NF-0").order_by("observed_at").values_list("churned", flat=True)
    ) == [False, True]
    assert Outcome.objects.count() == 6
    assert [[o.customer_id for o in outcomes] for _, outcomes in events[3:]] == [["NF-0"]]


def test_a_data_sources_label_column_settles_the_follow_up(
    key_client,
    follow_up,
    pg_source_db,  # noqa: F811 - the fixture, imported from test_sources
    events,
    django_capture_on_commit_callbacks,
):
    name, conn = pg_source_db
    pg_insert(conn, [source_row("OC-1")])
    with conn, conn.cursor() as cur:
        cur.execute("ALTER TABLE crm_customers ADD COLUMN churn text")
        cur.execute("UPDATE crm_customers SET churn = 'No'")
    source = data_source_save(
        source=DataSource(
            name="crm", kind=SourceKind.POSTGRESQL, host="127.0.0.1", database=name, username="postgres",
            query="SELECT * FROM crm_customers", column_mapping={**MAPPING, "churn": "churned"}, page_size=10,
        ),
        actor=SYSTEM,
    )  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        run = data_source_run_now(source_id=source.pk)
    assert run.counts["read"] == 1
    assert_settled(key_client, follow_up, "retained")
    assert [source for source, _ in events] == ["source"]


@pytest.fixture
def stream_source():  # type: ignore[no-untyped-def]
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("REDIS_URL is not set")
    client = redis.Redis.from_url(url, decode_responses=True)
    key = f"test:outcomes:{uuid.uuid4().hex[:8]}"
    source = data_source_save(
        source=DataSource(
            name=f"events-{key[-8:]}", kind=SourceKind.STREAM, collection=key,
            options={"redis_url": url, "block_ms": 50},
        ),
        actor=SYSTEM,
    )  # fmt: skip
    yield source, client
    client.delete(key, f"{key}:dead")


def test_a_stream_event_carrying_churn_settles_the_follow_up(
    key_client, follow_up, stream_source, events, django_capture_on_commit_callbacks
):
    source, client = stream_source
    occurred = timezone.now().replace(microsecond=0)

    def send(customer_id: str, data: dict) -> None:  # type: ignore[type-arg]
        client.xadd(source.collection, {
            "type": "customer.updated", "customer_id": customer_id, "data": json.dumps(data),
            "occurred_at": occurred.isoformat(),
        })  # fmt: skip

    send("OC-1", {"churned": "Yes"})
    send("OC-1", {"churned": "maybe"})
    with django_capture_on_commit_callbacks(execute=True):
        EventConsumer(source, consumer="test", client=client).run(until_idle=True)
    assert_settled(key_client, follow_up, "churned")
    outcome = Outcome.objects.get()
    assert (outcome.observed_at, outcome.source) == (occurred, f"stream:{source.name}")
    assert events == [("stream", [RecordedOutcome("OC-1", True, occurred)])]
    dead = client.xrange(f"{source.collection}:dead")
    assert json.loads(dead[0][1]["errors"]) == {"churned": ["Must be yes/no, true/false or 1/0."]}
    assert AuditLogEntry.objects.get(action="outcome.record").details["channel"] == "stream"


def test_the_admin_outcome_form_goes_through_the_service(
    client, admin_user, key_client, follow_up, events, django_capture_on_commit_callbacks
):
    client.force_login(admin_user)
    now = timezone.localtime()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/admin/customers/outcome/add/", {
            "customer": follow_up.customer_id, "churned": "on", "source": "phone call",
            "observed_at_0": now.strftime("%Y-%m-%d"), "observed_at_1": now.strftime("%H:%M:%S"),
        })  # fmt: skip
    assert response.status_code == 302, response.content[:2000]
    outcome = Outcome.objects.get()
    assert (outcome.churned, outcome.source, outcome.recorded_by) == (True, "phone call", "user:root")
    entry = AuditLogEntry.objects.get(action="outcome.record")
    assert (entry.details["channel"], entry.actor_label) == ("admin", "user:root")
    assert_settled(key_client, follow_up, "churned")
    assert [source for source, _ in events] == ["admin"]
    # recorded observations are not edited in place
    page = client.get(f"/admin/customers/outcome/{outcome.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content


def test_the_receiver_queues_a_task_and_falls_back_in_process_without_a_broker(follow_up):
    from campaigns import receivers

    observed = timezone.now()
    with (
        override_settings(CELERY_TASK_ALWAYS_EAGER=False),
        mock.patch.object(receivers.apply_recorded_outcomes, "delay") as delay,
    ):
        receivers.settle_follow_ups("customers", outcomes=[RecordedOutcome("OC-1", True, observed)], source="api")
    delay.assert_called_once_with(customer_ids=["OC-1"])
    follow_up.refresh_from_db()
    assert follow_up.outcome == "unknown"  # the writer only queued the work

    outcomes_record(outcomes=[OutcomeInput("OC-1", True, observed, "crm")], channel="api")
    with (
        override_settings(CELERY_TASK_ALWAYS_EAGER=False),
        mock.patch.object(receivers.apply_recorded_outcomes, "delay", side_effect=BrokerUnavailable("down")),
    ):
        receivers.settle_follow_ups("customers", outcomes=[RecordedOutcome("OC-1", True, observed)], source="api")
    follow_up.refresh_from_db()
    assert follow_up.outcome == "churned"


def test_without_a_broker_the_receiver_settles_in_process_in_one_call(follow_up):
    from campaigns import receivers

    outcomes_record(outcomes=[OutcomeInput("OC-1", False, timezone.now(), "crm")], channel="api")
    many = [RecordedOutcome(f"NOBODY-{i}", True, timezone.now()) for i in range(OUTCOME_BATCH_SIZE + 1)]
    with (
        override_settings(CELERY_TASK_ALWAYS_EAGER=True),
        mock.patch.object(receivers.apply_recorded_outcomes, "delay") as delay,
    ):
        receivers.settle_follow_ups("customers", outcomes=[*many, RecordedOutcome("OC-1", False, timezone.now())],
                                    source="file")  # fmt: skip
    delay.assert_not_called()
    follow_up.refresh_from_db()
    assert (follow_up.outcome, follow_up.outcome_source) == ("retained", "recorded")


def test_settling_many_customers_finds_the_few_that_are_targets(follow_up, django_assert_max_num_queries):
    # A file import announces thousands of customers, almost none of them in a campaign: they are
    # looked up with one array parameter, and the follow-up among them is still settled.
    outcomes_record(outcomes=[OutcomeInput("OC-1", False, timezone.now(), "crm")], channel="api")
    ids = [f"NOBODY-{i}" for i in range(OUTCOME_BATCH_SIZE + 10)]
    assert campaign_targets_apply_outcomes(customer_ids=[*ids, "OC-1"]) == 1
    follow_up.refresh_from_db()
    assert (follow_up.outcome, follow_up.outcome_source) == ("retained", "recorded")
    assert campaign_targets_apply_outcomes(customer_ids=[*ids, "OC-1"]) == 0  # again: nothing changes
    with django_assert_max_num_queries(3):  # the savepoint, the lookup, its release
        assert campaign_targets_apply_outcomes(customer_ids=ids) == 0


def test_openapi_documents_the_bulk_outcomes_endpoint(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    post = schema["paths"]["/api/v1/outcomes/bulk/"]["post"]
    request = post["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert schema["components"]["schemas"][request]["properties"]["outcomes"]["type"] == "array"
    response = post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    fields = set(schema["components"]["schemas"][response]["properties"])
    assert fields == {"created", "updated", "unchanged", "rejected"}
