"""Customer events from a Redis Stream: a consumer group, acknowledgement after commit, dead letters.

An entry's fields: ``type`` (customer.updated, plan.changed, contract.changed, payment.failed,
support.ticket_opened), ``customer_id``, ``data`` (a JSON object) and optionally
``occurred_at`` (ISO 8601). customer.updated creates or changes a customer (a partial record is
merged onto the stored one); its data may also carry ``churned`` (yes/no, true/false, 1/0), an
outcome observed at ``occurred_at`` (else the entry's own time), recorded through the one outcome
service once per batch (source ``stream:<source name>``); plan.changed and contract.changed
change the fields of a plan or a contract of an existing customer; payment.failed and
support.ticket_opened are recorded against the customer. Every applied entry is kept as a
CustomerEvent, unique per stream entry.

Delivery: entries are read with XREADGROUP, applied in one transaction per batch, and XACKed only
after it commits; a crash before the ack leaves them pending, and XAUTOCLAIM hands entries idle
longer than ``claim_idle_seconds`` to a live consumer (a restarted consumer also starts with its
own pending entries). An entry already in CustomerEvent is acknowledged without being applied
again. Entries that fail validation, and entries delivered more than ``max_deliveries`` times,
go to the dead-letter stream with the reason (at least once) and to the run's quarantine.

Options (DataSource.options): group ("churn-ingestion"), dead_letter_stream ("<stream>:dead"),
redis_url (REDIS_URL), batch (100), block_ms (5000), claim_idle_seconds (60), max_deliveries (5),
run_minutes (60: a long-running consumer reports into one IngestionRun per this many minutes).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, close_old_connections, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.services import SYSTEM, audit_record
from churn_infra.datetimes import OffsetOutOfRange, storable
from churn_infra.metrics import INGESTION_ROWS, INGESTION_RUNS
from churn_ml.schema import FIELD_ORDER, INTERNET_ADDON_FIELDS, KNOWN_FIELDS, parse_churn_labels, validate_records
from customers.ingestion.pipeline import json_safe, request_rescore, run_outcome
from customers.ingestion.sources import connect_address
from customers.models import (
    Customer,
    CustomerEvent,
    DataSource,
    EventStatus,
    EventType,
    IngestionRun,
    QuarantinedRow,
    QuarantineReason,
    RunStatus,
    SourceKind,
)
from customers.services import OutcomeInput, customers_upsert_validated, outcomes_record

logger = logging.getLogger(__name__)

# Fields each kind of change may carry; customer.updated may carry any field of the record.
EVENT_FIELDS: dict[str, frozenset[str]] = {
    EventType.PLAN_CHANGED: frozenset(
        {"phone_service", "multiple_lines", "internet_service", *INTERNET_ADDON_FIELDS, "monthly_charges"}
    ),
    EventType.CONTRACT_CHANGED: frozenset({"contract_type", "payment_method", "paperless_billing", "monthly_charges"}),
}
SIGNAL_EVENTS = frozenset({EventType.PAYMENT_FAILED, EventType.SUPPORT_TICKET_OPENED})


class EventRejected(Exception):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


@dataclass(frozen=True)
class StreamSettings:
    stream: str
    group: str
    dead_letter: str
    redis_url: str
    batch: int
    block_ms: int
    claim_idle_ms: int
    max_deliveries: int
    run_minutes: float
    dead_letter_maxlen: int
    own_redis: bool  # the platform's REDIS_URL (trusted), not one the source names (egress policy)

    @classmethod
    def of(cls, source: DataSource) -> StreamSettings:
        options: Mapping[str, Any] = source.options or {}
        redis_url = options.get("redis_url") or settings.REDIS_URL
        if not redis_url:
            raise ValueError("No Redis: set REDIS_URL or the source's options.redis_url.")
        return cls(
            stream=source.collection,
            group=options.get("group", "churn-ingestion"),
            dead_letter=options.get("dead_letter_stream", f"{source.collection}:dead"),
            redis_url=redis_url,
            batch=int(options.get("batch", 100)),
            block_ms=int(options.get("block_ms", 5_000)),
            claim_idle_ms=int(float(options.get("claim_idle_seconds", 60)) * 1000),
            max_deliveries=int(options.get("max_deliveries", 5)),
            run_minutes=float(options.get("run_minutes", 60)),
            dead_letter_maxlen=int(options.get("dead_letter_maxlen", 100_000)),
            own_redis=not options.get("redis_url"),
        )


def pinned_redis_url(url: str) -> str:
    """A source's own Redis URL with its host replaced by the address the egress policy checked."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    address = connect_address(host, parts.port or 6379)
    if address == host:
        return url
    shown = f"[{address}]" if ":" in address else address
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{shown}" if userinfo else shown
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def default_consumer_name() -> str:
    """Stable across restarts on one host, so a restarted consumer finds its own pending entries."""
    return os.environ.get("CHURN_CONSUMER_NAME") or socket.gethostname()


class EventConsumer:
    """Consumes one stream source. ``run()`` loops until ``stop`` is set (or the stream is drained)."""

    def __init__(self, source: DataSource, *, consumer: str | None = None, client: redis.Redis | None = None) -> None:
        if source.kind != SourceKind.STREAM:
            raise ValueError(f"{source.name} is not a stream source.")
        self.source = source
        self.conf = StreamSettings.of(source)
        self.consumer = consumer or default_consumer_name()
        self.client = client or redis.Redis.from_url(
            self.conf.redis_url if self.conf.own_redis else pinned_redis_url(self.conf.redis_url),
            decode_responses=True,
        )
        self.run_record: IngestionRun | None = None
        self.run_ends_at: datetime | None = None
        self.position = 0
        self.token = f"consumer:{self.consumer}:{os.getpid()}"
        self._labels: list[OutcomeInput] = []  # churn labels of the batch being applied

    # the loop

    def ensure_group(self) -> None:
        try:
            self.client.xgroup_create(self.conf.stream, self.conf.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def run(
        self, *, stop: threading.Event | None = None, until_idle: bool = False, max_events: int | None = None
    ) -> int:
        """Process entries; returns how many. ``until_idle`` stops when nothing is left to read."""
        stop = stop or threading.Event()
        self.ensure_group()
        handled = 0
        own_backlog = True  # first this consumer's own pending entries (id 0), then new ones (>)
        failures = 0
        try:
            while not stop.is_set() and (max_events is None or handled < max_events):
                try:
                    entries, reclaimed = self._next_batch(own_backlog, block=not until_idle)
                    if own_backlog and not entries:
                        own_backlog = False
                        continue
                    if not entries:
                        self._roll_run()
                        if until_idle:
                            break
                        continue
                    handled += self.process(entries, reclaimed=reclaimed)
                    self._roll_run()
                    failures = 0
                except (OperationalError, InterfaceError, redis.ConnectionError, redis.TimeoutError) as exc:
                    # Nothing was acknowledged; the entries stay pending and come back.
                    failures += 1
                    logger.warning("Event consumer %s: %s; retrying", self.consumer, exc)
                    close_old_connections()
                    stop.wait(min(2**failures, 30))
        finally:
            self.close_run()
        return handled

    def _next_batch(self, own_backlog: bool, *, block: bool) -> tuple[list[tuple[str, dict[str, str]]], set[str]]:
        conf = self.conf
        if own_backlog:
            response = self.client.xreadgroup(conf.group, self.consumer, {conf.stream: "0"}, count=conf.batch)
            entries = [(eid, fields) for eid, fields in (response[0][1] if response else []) if fields]
            return entries, {eid for eid, _ in entries}
        claimed = self.client.xautoclaim(
            conf.stream, conf.group, self.consumer, min_idle_time=conf.claim_idle_ms, start_id="0-0", count=conf.batch
        )
        entries = [(eid, fields) for eid, fields in claimed[1] if fields]
        if entries:
            return entries, {eid for eid, _ in entries}
        response = self.client.xreadgroup(
            conf.group, self.consumer, {conf.stream: ">"}, count=conf.batch, block=conf.block_ms if block else None
        )
        return [(eid, fields) for eid, fields in (response[0][1] if response else [])], set()

    # one batch

    def process(
        self, entries: list[tuple[str, dict[str, str]]], *, reclaimed: set[str] | frozenset[str] = frozenset()
    ) -> int:
        conf = self.conf
        run = self._current_run()
        ids = [eid for eid, _ in entries]
        deliveries = self._deliveries(reclaimed)
        known = {
            e.entry_id: e
            for e in CustomerEvent.objects.filter(stream=conf.stream, entry_id__in=ids).only(
                "entry_id", "status", "errors"
            )
        }
        dead: list[tuple[str, dict[str, str], dict[str, list[str]]]] = []
        counts = {"read": 0, "created": 0, "updated": 0, "unchanged": 0, "rejected": 0}
        rescore: dict[str, list[str]] = {}
        now = timezone.now()
        self._labels = []
        with transaction.atomic():
            for eid, fields in entries:
                earlier = known.get(eid)
                if earlier is not None:  # applied before a crash that came before the ack
                    if earlier.status == EventStatus.REJECTED:
                        dead.append((eid, fields, earlier.errors))
                    continue
                counts["read"] += 1
                self.position += 1
                try:
                    if deliveries.get(eid, 0) > conf.max_deliveries:
                        raise EventRejected(
                            {"non_field_errors": [f"Delivered {deliveries[eid]} times without being processed."]}
                        )
                    with transaction.atomic():
                        outcome, customer_id, event_type = self.apply(eid, fields, run)
                    counts[outcome] += 1
                    if outcome != "unchanged" or event_type in SIGNAL_EVENTS:
                        rescore.setdefault(event_type, []).append(customer_id)
                except EventRejected as exc:
                    counts["rejected"] += 1
                    dead.append((eid, fields, exc.errors))
                    self._record_rejected(eid, fields, exc.errors, run)
                except IntegrityError:
                    # Another consumer reclaimed this entry while it was slow here and applied it first.
                    counts["read"] -= 1
                    logger.info("Stream entry %s was applied by another consumer", eid)
            if self._labels:
                outcomes_record(
                    outcomes=self._labels,
                    channel="stream",
                    actor=replace(SYSTEM, department_id=self.source.department_id),
                    audit_details={"run_id": str(run.pk), "stream": conf.stream},
                )
            IngestionRun.objects.filter(pk=run.pk).update(
                **{f"{k}_count": F(f"{k}_count") + v for k, v in counts.items() if v},
                heartbeat_at=now,
                updated_at=now,
            )
            if self.source.rescore_on_change:
                for event_type, customer_ids in rescore.items():
                    transaction.on_commit(
                        lambda ids=customer_ids, t=event_type: request_rescore(ids, reason=f"event:{t}")
                    )
        # Committed: now the dead letters (at least once) and the acknowledgements.
        if dead:
            pipe = self.client.pipeline(transaction=False)
            for eid, fields, errors in dead:
                pipe.xadd(
                    conf.dead_letter,
                    {**fields, "original_id": eid, "stream": conf.stream, "errors": json.dumps(errors)},
                    maxlen=conf.dead_letter_maxlen,
                    approximate=True,
                )
            pipe.execute()
        self.client.xack(conf.stream, conf.group, *ids)
        for name in ("created", "updated", "unchanged", "rejected"):
            if counts[name]:
                INGESTION_ROWS.labels(source_kind=SourceKind.STREAM, outcome=name).inc(counts[name])
        return len(entries)

    def _deliveries(self, reclaimed: set[str] | frozenset[str]) -> dict[str, int]:
        if not reclaimed:
            return {}
        first, last = min(reclaimed, key=_entry_key), max(reclaimed, key=_entry_key)
        pending = self.client.xpending_range(self.conf.stream, self.conf.group, min=first, max=last, count=10_000)
        return {p["message_id"]: int(p["times_delivered"]) for p in pending if p["message_id"] in reclaimed}

    def apply(self, entry_id: str, fields: Mapping[str, str], run: IngestionRun) -> tuple[str, str, str]:
        """Apply one event: ("created" | "updated" | "unchanged", customer_id, type) or EventRejected."""
        event_type = fields.get("type", "")
        if event_type not in EventType.values:
            raise EventRejected({"type": [f"Must be one of {', '.join(EventType.values)}; got {event_type!r}."]})
        customer_id = (fields.get("customer_id") or "").strip()
        if not customer_id:
            raise EventRejected({"customer_id": ["This field is required."]})
        try:
            data = json.loads(fields.get("data") or "{}")
        except ValueError as exc:
            raise EventRejected({"data": [f"Not valid JSON: {exc}."]}) from None
        if not isinstance(data, dict):
            raise EventRejected({"data": ["Must be a JSON object."]})
        if "customer_id" in data:
            if data["customer_id"] != customer_id:
                raise EventRejected({"customer_id": ["The data names another customer than the event."]})
            data = {k: v for k, v in data.items() if k != "customer_id"}
        occurred_at = None
        if fields.get("occurred_at"):
            occurred_at = parse_datetime(fields["occurred_at"])
            if occurred_at is None:
                raise EventRejected({"occurred_at": ["Must be an ISO 8601 date and time."]})
            if timezone.is_naive(occurred_at):
                occurred_at = timezone.make_aware(occurred_at, timezone.get_fixed_timezone(0))
            try:
                occurred_at = storable(occurred_at)
            except OffsetOutOfRange as exc:
                raise EventRejected({"occurred_at": [str(exc)]}) from None
        customer = Customer.objects.select_for_update().filter(customer_id=customer_id).first()
        if customer is None and event_type != EventType.CUSTOMER_UPDATED:
            raise EventRejected({"customer_id": [f"No customer {customer_id!r}; a {event_type} needs one."]})

        label = None
        if "churned" in data and event_type == EventType.CUSTOMER_UPDATED:
            labels, known = parse_churn_labels([data["churned"]])
            if not known[0]:
                raise EventRejected({"churned": ["Must be yes/no, true/false or 1/0."]})
            label = OutcomeInput(
                customer_id, bool(labels[0]), occurred_at or _entry_time(entry_id), f"stream:{self.source.name}"[:100]
            )
            data = {k: v for k, v in data.items() if k != "churned"}
        outcome = "unchanged"
        if event_type not in SIGNAL_EVENTS:
            allowed = EVENT_FIELDS.get(event_type, KNOWN_FIELDS - {"customer_id"})
            refused = sorted(set(data) - allowed)
            if refused:
                raise EventRejected({name: [f"Not a field a {event_type} event may change."] for name in refused})
            stored = {name: getattr(customer, name) for name in FIELD_ORDER} if customer is not None else {}
            result = validate_records([{**stored, **data, "customer_id": customer_id}])
            if result.errors:
                raise EventRejected(result.errors[0])
            counts = customers_upsert_validated(result=result, rows=[0], source=f"stream:{self.source.name}")
            outcome = "created" if counts.created else "updated" if counts.updated else "unchanged"
            if customer is None:
                customer = Customer.objects.get(customer_id=customer_id)
        CustomerEvent.objects.create(
            stream=self.conf.stream,
            entry_id=entry_id,
            event_type=event_type,
            status=EventStatus.APPLIED,
            customer=customer,
            customer_key=customer_id[:200],
            occurred_at=occurred_at,
            data=json_safe(data),
            changed=outcome != "unchanged",
            run=run,
        )
        if label is not None:
            self._labels.append(label)
        return outcome, customer_id, event_type

    def _record_rejected(
        self, entry_id: str, fields: Mapping[str, str], errors: dict[str, list[str]], run: IngestionRun
    ) -> None:
        CustomerEvent.objects.create(
            stream=self.conf.stream,
            entry_id=entry_id,
            event_type=str(fields.get("type", ""))[:40],
            status=EventStatus.REJECTED,
            customer_key=str(fields.get("customer_id", ""))[:200],
            data=json_safe(dict(fields)),
            errors=json_safe(errors),
            run=run,
        )
        QuarantinedRow.objects.create(
            run=run,
            line=self.position,
            customer_id=str(fields.get("customer_id", ""))[:200],
            reason=QuarantineReason.INVALID,
            raw=json_safe({**fields, "_entry_id": entry_id}),
            errors=json_safe(errors),
        )

    # runs

    def _current_run(self) -> IngestionRun:
        now = timezone.now()
        if self.run_record is None:
            self.run_record = IngestionRun.objects.create(
                source_kind=SourceKind.STREAM,
                source_name=self.source.name,
                data_source=self.source,
                department_id=self.source.department_id,
                started_by=self.token[:200],
                status=RunStatus.RUNNING,
                worker=self.token[:100],
                started_at=now,
                heartbeat_at=now,
                details={"stream": self.conf.stream, "group": self.conf.group, "consumer": self.consumer},
            )
            self.run_ends_at = now + timedelta(minutes=self.conf.run_minutes)
            self.position = 0
        return self.run_record

    def _roll_run(self) -> None:
        if self.run_record is not None and self.run_ends_at is not None and timezone.now() >= self.run_ends_at:
            self.close_run()

    def close_run(self) -> None:
        """End the current run: succeeded, or partially succeeded when some events were dead-lettered."""
        run = self.run_record
        if run is None:
            return
        self.run_record = None
        run.refresh_from_db()
        status, error = run_outcome(run.counts, refused="Some events were dead-lettered; see the rejected rows.")
        now = timezone.now()
        with transaction.atomic():
            IngestionRun.objects.filter(pk=run.pk).update(
                status=status,
                progress=1.0,
                finished_at=now,
                heartbeat_at=None,
                worker="",
                updated_at=now,
                error=error,
            )
            audit_record(
                actor=SYSTEM,
                action="ingestion.finish",
                obj=run,
                department_id=run.department_id,
                details={"status": status, "counts": run.counts},
            )
        INGESTION_RUNS.labels(source_kind=SourceKind.STREAM, status=status).inc()


def _entry_key(entry_id: str) -> tuple[int, int]:
    millis, _, seq = entry_id.partition("-")
    return int(millis), int(seq or 0)


def _entry_time(entry_id: str) -> datetime:
    """When Redis added the entry (its id's milliseconds): the same on every redelivery."""
    return datetime.fromtimestamp(_entry_key(entry_id)[0] / 1000, tz=UTC)


def stream_drain(*, source: DataSource, max_events: int = 10_000) -> tuple[int, IngestionRun | None]:
    """Process what is waiting in a stream source now (admin, API, run_source): (events, its run).

    A consumer of its own (host, process) so that it never takes a long-running consumer's
    pending entries for its own; whatever it leaves pending is reclaimed by the others.
    """
    consumer = EventConsumer(source, consumer=f"{default_consumer_name()}-once-{os.getpid()}")
    handled = consumer.run(until_idle=True, max_events=max_events)
    consumer.client.xgroup_delconsumer(consumer.conf.stream, consumer.conf.group, consumer.consumer)
    return handled, source.runs.order_by("-created_at").first() if handled else None
