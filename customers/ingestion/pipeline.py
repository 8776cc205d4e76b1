"""The one path every source's rows take: validate, de-duplicate, flag, write, quarantine, count.

Over 500 lines on purpose: one class, Pipeline, whose steps share a chunk's state, its transaction
and the writer threads; the helpers above it serve it alone.

Each chunk commits in one transaction together with its quarantined rows, an IngestionChunk row
(its counts and quality sums) and its increments to the run's counts, so the run always describes
exactly what is stored. An interrupted run resumes after its committed chunks: those are read
again only to remember their customer ids (to recognise a later duplicate), and nothing is
written or counted twice.

The last row for a customer wins, as if the rows had been sent one after another. A row that a
later row of the same run replaces is quarantined as superseded: within a chunk it is never
written; across chunks it was written, so the later chunk reads the stored values first and
moves the earlier row's count to rejected, keeping read = created + updated + unchanged + rejected.

In a worker (autocommit, PostgreSQL) the reading thread validates the next chunk while writer
threads, each with its own connection, store earlier ones: PostgreSQL does most of the work in
its own processes, so both cores stay busy. A chunk that replaces rows of earlier chunks waits
until those are committed.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import queue
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import numpy as np
from celery import current_app
from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from accounts.services import SYSTEM
from churn_infra.db import insert_objects
from churn_infra.metrics import INGESTION_ROWS
from churn_ml.deferred import deferred
from churn_ml.schema import (
    BOOL_FIELDS,
    ENUM_FIELDS,
    NUMBER_FIELDS,
    RECORD_FIELDS,
    ValidationResult,
    parse_churn_labels,
    validate_columns,
)
from customers.ingestion import anomalies
from customers.ingestion.readers.chunks import Chunk
from customers.ingestion.writers import ChunkWrite, WriteOutcome, Writer
from customers.models import (
    DataSource,
    IngestionChunk,
    IngestionRun,
    QuarantinedRow,
    QuarantineReason,
    RunStatus,
    SourceKind,
)
from customers.services import OutcomeColumns, outcomes_record

# pandas loads on first use (churn_ml.deferred): a web worker that scores single records never needs it.
pd = deferred("pandas")

logger = logging.getLogger(__name__)

RESCORE_TASK = "predictions.tasks.rescore_customers"
# Customer ids per re-scoring message: a chunk of 100,000 changes becomes 100 small messages.
RESCORE_BATCH = 1_000
# Quarantined rows per INSERT.
QUARANTINE_BATCH = 2_000
# Per-chunk id sets kept apart before they are merged into one sorted array (lookups scan each).
_SEEN_PARTS = 8


class ClaimLost(Exception):
    """Another worker has taken the run over; this one stops without writing."""


def json_safe(value: Any) -> Any:
    """A value as JSON can hold it (PostgreSQL's jsonb refuses NUL characters and NaN)."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {json_safe(str(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return json_safe(value.decode("utf-8", "replace"))
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return json_safe(str(value))


def hash_ids(ids: np.ndarray) -> np.ndarray:
    """64-bit hashes of customer ids: 8 bytes per row to remember, against ~60 for a Python string.

    Two different ids share a hash with probability ~1e-8 in a 10-million-row file; the result
    would be a spurious "superseded" note for one row, never a lost or changed customer.
    """
    return pd.util.hash_array(np.asarray(ids, dtype=object), categorize=False)


class SeenIds:
    """Customer ids written earlier in the run, with the line of their latest row."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []

    def lookup_and_add(self, hashes: np.ndarray, lines: np.ndarray) -> np.ndarray:
        """Line of each id's latest earlier row (-1 when new to the run); then remember these rows.

        The queries are sorted once: binary searches in sorted order stay in cache (~5x faster).
        """
        order = np.argsort(hashes, kind="stable")
        queries = hashes[order]
        found = np.full(len(hashes), -1, dtype=np.int64)
        pending = np.ones(len(hashes), dtype=bool)
        for keys, part_lines in reversed(self.parts):
            if not pending.any() or not len(keys):
                continue
            pos = np.minimum(np.searchsorted(keys, queries), len(keys) - 1)
            hit = pending & (keys[pos] == queries)
            found[hit] = part_lines[pos[hit]]
            pending &= ~hit
        earlier = np.empty_like(found)
        earlier[order] = found
        self.parts.append((queries, np.asarray(lines, dtype=np.int64)[order]))
        if len(self.parts) > _SEEN_PARTS:
            keys = np.concatenate([k for k, _ in self.parts])
            lines_all = np.concatenate([v for _, v in self.parts])
            merged = np.argsort(keys, kind="stable")  # stable: a later part's line comes last
            keys, lines_all = keys[merged], lines_all[merged]
            last = np.append(keys[1:] != keys[:-1], True)
            self.parts = [(keys[last], lines_all[last])]
        return earlier


_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def return_freed_memory_to_the_os() -> None:
    """Make glibc serve every allocation over 1 MB with its own mmap, released when freed.

    By default glibc raises that threshold each time such a block is freed, after which the
    chunk-sized numpy and pandas buffers come from the heap and freed ones stay in the process
    (with writer threads, in several arenas): a 1,000,000-row file then peaks ~30 MB higher.
    """
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to tune
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 20)
        # Each writer thread would otherwise get its own heap arena, holding what it freed.
        libc.mallopt(_M_ARENA_MAX, 2)


def empty_sums() -> dict[str, Any]:
    return {
        "parsed": 0,
        "present": dict.fromkeys(RECORD_FIELDS, 0),
        "stored": 0,
        "warned": 0,
        "points": 0.0,
        "anomalous": 0,
        "anomalies": {},
        "outcomes": 0,
        "labels_unreadable": 0,
        "not_kept": 0,
    }


def _merge_sums(total: dict[str, Any], delta: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(total)
    for key, value in delta.items():
        if isinstance(value, dict):
            inner = dict(merged.get(key) or {})
            for k, v in value.items():
                inner[k] = inner.get(k, 0) + v
            merged[key] = inner
        else:
            merged[key] = merged.get(key, 0) + value
    return merged


def quality_report(sums: Mapping[str, Any], read: int) -> dict[str, Any]:
    """The run's data-quality report.

    completeness: % of readable rows with a usable value per field; rows_with_warnings_pct: % of
    stored rows carrying a warning or an anomaly; quality_pct: per read row, its completeness if
    stored (halved when it carries a warning or an anomaly), 0 if refused, averaged.
    """
    parsed, stored = sums["parsed"], sums["stored"]
    return {
        "completeness": {k: round(100.0 * v / parsed, 2) for k, v in sums["present"].items()} if parsed else {},
        "rows_with_warnings_pct": round(100.0 * sums["warned"] / stored, 2) if stored else 0.0,
        "anomaly_count": sums["anomalous"],
        "anomalies_by_field": dict(sums["anomalies"]),
        "quality_pct": round(100.0 * sums["points"] / read, 2) if read else 0.0,
        "rejected_not_kept": sums.get("not_kept", 0),
    }


def run_outcome(counts: Mapping[str, int], *, fatal: str = "", empty: str = "", refused: str = "") -> tuple[str, str]:
    """(status, error) of a finished run from its counts.

    Failed when nothing could be stored (``empty``: the message when nothing was read, which is
    then a failure), partially succeeded when some rows were refused or reading stopped early
    (``fatal``), succeeded otherwise.
    """
    stored = counts["created"] + counts["updated"] + counts["unchanged"]
    if counts["read"] == 0 and empty:
        return RunStatus.FAILED, fatal or empty
    if stored == 0 and (counts["read"] or fatal):
        return RunStatus.FAILED, fatal or "No row could be stored; every row is listed with its reasons."
    if fatal or counts["rejected"]:
        return RunStatus.PARTIALLY_SUCCEEDED, fatal or refused
    return RunStatus.SUCCEEDED, ""


def request_rescore(customer_ids: list[str], reason: str) -> None:
    """Ask the scoring service to re-score customers; called after the change has committed."""
    for start in range(0, len(customer_ids), RESCORE_BATCH):
        kwargs = {"customer_ids": customer_ids[start : start + RESCORE_BATCH], "reason": reason}
        if settings.CELERY_BROKER_URL:
            current_app.send_task(RESCORE_TASK, kwargs=kwargs)
            continue
        # No broker (make run): run it here if the scoring app has registered it. The ingestion has
        # committed already, so a scoring failure (no active model yet) is logged, not raised.
        task = current_app.tasks.get(RESCORE_TASK)
        if task is None:
            logger.warning("No broker and no %s task: %d customers not re-scored", RESCORE_TASK, len(customer_ids))
            return
        try:
            task.apply(kwargs=kwargs, throw=True)
        except Exception:
            logger.exception("Re-scoring %d customers after %s failed", len(kwargs["customer_ids"]), reason)
            return


class TooManyRejected(Exception):
    """The first chunk was mostly refused: the file or the mapping is wrong; the run stops after it."""


def fail_fast_message(rejected: int, read: int) -> str | None:
    """Why a first chunk of ``read`` rows with ``rejected`` refused should stop the run, or None."""
    if read < settings.INGESTION_FAIL_FAST_MIN_ROWS or rejected <= settings.INGESTION_FAIL_FAST_REJECTED_SHARE * read:
        return None
    return (
        f"Stopped after the first {read} rows: {rejected} of them ({100.0 * rejected / read:.0f}%) were refused, "
        f"more than INGESTION_FAIL_FAST_REJECTED_SHARE ({settings.INGESTION_FAIL_FAST_REJECTED_SHARE:.0%}). "
        "Check the file's columns or the source's column_mapping against the rejected rows' reasons."
    )


@dataclass
class Prepared:
    index: int
    read: int
    result: ValidationResult | None = None
    rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.intp))
    lines: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    completeness: np.ndarray | None = None
    cross: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> (earlier line, this line)
    quarantine: list[QuarantinedRow] = field(default_factory=list)
    labels: np.ndarray | None = None
    label_known: np.ndarray | None = None
    sums: dict[str, Any] = field(default_factory=dict)
    progress: float | None = None
    cursor: Any = None
    stop: str | None = None  # the run stops after this chunk, for this reason


class Pipeline:
    """Runs chunks of one source into the customers for one IngestionRun held by ``token``."""

    def __init__(
        self,
        *,
        run: IngestionRun,
        token: str,
        writer: Writer,
        reference: anomalies.Reference | None,
        rescore: bool = False,
        observed_at: datetime | None = None,
        outcome_source: str = "",
        data_source_id: int | None = None,
        writers: int | None = None,
    ) -> None:
        self.run = run
        self.token = token
        self.writer = writer
        self.rescore = rescore
        self.observed_at = observed_at
        self.outcome_source = outcome_source
        self.data_source_id = data_source_id
        committed = list(IngestionChunk.objects.filter(run=run).values_list("index", "sums"))
        self.done: set[int] = {index for index, _ in committed}
        self.sums: dict[str, Any] = empty_sums()
        for _, sums in committed:
            self.sums = _merge_sums(self.sums, sums)
        stored_reference = (run.checkpoint or {}).get("reference")
        self.reference = anomalies.Reference.from_json(stored_reference) if stored_reference else reference
        self.reference_from_run = self.reference is None and not committed
        self.counts = dict(run.counts)
        # Rejected rows kept in full (INGESTION_QUARANTINE_MAX_ROWS); those beyond are only counted.
        self.quarantine_kept = QuarantinedRow.objects.filter(run=run).count() if committed else 0
        self.seen = SeenIds()
        if writers is None:
            # Threads need autocommit (each has its own connection) and a database that takes
            # concurrent writers: PostgreSQL, not SQLite.
            threaded = settings.INGESTION_PIPELINE_THREADS and not connection.in_atomic_block
            writers = settings.INGESTION_WRITERS if threaded and connection.vendor == "postgresql" else 0
        self.writers = writers
        # Totals and the "earlier chunks committed" mark are shared by the writer threads.
        self._lock = threading.Condition()
        self._finished = set(self.done)
        self._lowest_open = 0
        self._advance()
        self._failure: list[BaseException] = []

    @property
    def details(self) -> dict[str, Any]:
        return {
            **self.run.details,
            "outcomes_recorded": self.sums["outcomes"],
            "labels_unreadable": self.sums["labels_unreadable"],
            "chunks": len(self._finished),
        }

    # driving

    def run_chunks(self, chunks: Iterable[Chunk]) -> None:
        """Prepare chunks here and write them here (no writers) or on writer threads, each with its connection."""
        stop: str | None = None
        if not self.writers:
            for chunk in chunks:
                prepared = self.prepare(chunk)
                if prepared is not None:
                    self.commit(prepared)
                    stop = prepared.stop
                    if stop:
                        raise TooManyRejected(stop)
            return
        return_freed_memory_to_the_os()
        # One prepared chunk waits while each writer works: memory holds writers + 2 chunks.
        pending: queue.Queue[Prepared | None] = queue.Queue(maxsize=1)
        threads = [
            threading.Thread(target=self._write_loop, args=(pending,), name=f"ingestion-writer-{n}", daemon=True)
            for n in range(self.writers)
        ]
        for thread in threads:
            thread.start()
        try:
            for chunk in chunks:
                if self._failure:
                    break
                prepared = self.prepare(chunk)
                if prepared is not None:
                    pending.put(prepared)
                    stop = prepared.stop
                    if stop:
                        break
        except BaseException as exc:
            with self._lock:
                self._failure.append(exc)
                self._lock.notify_all()
            raise
        finally:
            for _ in threads:
                pending.put(None)
            for thread in threads:
                thread.join()
        if self._failure:
            raise self._failure[0]
        if stop:
            raise TooManyRejected(stop)

    def _write_loop(self, pending: queue.Queue[Prepared | None]) -> None:
        try:
            while (item := pending.get()) is not None:
                if self._failure:
                    continue  # drain, so the reading thread never blocks on a full queue
                try:
                    if item.cross:
                        # Rows that replace rows of earlier chunks go in after those chunks, so the last row wins.
                        with self._lock:
                            self._lock.wait_for(lambda item=item: self._lowest_open >= item.index or self._failure)
                        if self._failure:
                            continue
                    self.commit(item)
                except BaseException as exc:  # handed to the reading thread, which re-raises it
                    with self._lock:
                        self._failure.append(exc)
                        self._lock.notify_all()
        finally:
            connections.close_all()

    def _advance(self) -> None:
        while self._lowest_open in self._finished:
            self._lowest_open += 1

    # reading side

    def prepare(self, chunk: Chunk) -> Prepared | None:
        """Validate and sort one chunk; None for a chunk an earlier attempt already committed."""
        result = validate_columns(chunk.columns, chunk.n)
        valid = np.flatnonzero(result.valid)
        superseded, rows = _last_wins(result.columns["customer_id"], valid)
        ids = result.columns["customer_id"][rows]
        lines = np.asarray(chunk.lines, dtype=np.int64)
        earlier = self.seen.lookup_and_add(hash_ids(ids), lines[rows])
        if chunk.index in self.done:
            return None

        if self.reference is None and self.reference_from_run:
            self.reference = anomalies.reference_from(
                {name: result.columns[name][rows] for name in anomalies.FIELDS}, origin="this run's first rows"
            )
            self.reference_from_run = False
        flags = anomalies.flag(self.reference, result.columns, rows) if self.reference is not None else {}
        for row, found in flags.items():
            result.warnings.setdefault(row, []).extend(message for _, message in found)
        completeness = result.completeness()

        labels = known = None
        unreadable = 0
        if chunk.labels is not None:
            labels, known = parse_churn_labels(chunk.labels)
            unreadable = int(np.count_nonzero(~known[rows] & _label_given(chunk.labels)[rows]))

        prepared = Prepared(
            index=chunk.index,
            read=chunk.read,
            result=result,
            rows=rows,
            lines=lines,
            completeness=completeness,
            cross={str(ids[k]): (int(earlier[k]), int(lines[rows[k]])) for k in np.flatnonzero(earlier >= 0)},
            labels=labels,
            label_known=known,
            progress=chunk.progress,
            cursor=chunk.cursor,
        )
        prepared.quarantine = self._quarantine(chunk, result, superseded)
        if chunk.index == 0:
            prepared.stop = fail_fast_message(len(result.errors) + len(chunk.malformed), chunk.read)
        flagged = np.isin(rows, np.fromiter(result.warnings, dtype=np.intp, count=len(result.warnings)))
        by_field: dict[str, int] = {}
        for found in flags.values():
            for name, _ in found:
                by_field[name] = by_field.get(name, 0) + 1
        prepared.sums = {
            "parsed": chunk.n,
            "present": _present_counts(result),
            "stored": len(rows),
            "warned": int(flagged.sum()),
            "points": float(np.sum(completeness[rows] / 100.0 * np.where(flagged, 0.5, 1.0))),
            "anomalous": len(flags),
            "anomalies": by_field,
            "labels_unreadable": unreadable,
        }
        return prepared

    def _quarantine(self, chunk: Chunk, result: ValidationResult, superseded: dict[int, int]) -> list[QuarantinedRow]:
        lines = chunk.lines
        given_ids = chunk.columns.get("customer_id")
        out = [
            QuarantinedRow(
                line=int(lines[i]),
                customer_id=_given_id(given_ids, i),
                reason=QuarantineReason.INVALID,
                raw=json_safe(chunk.raw(i)),
                errors=json_safe(result.errors[i]),
            )
            for i in sorted(result.errors)
        ]
        out += [
            QuarantinedRow(
                line=int(lines[i]),
                customer_id=_given_id(given_ids, i),
                reason=QuarantineReason.SUPERSEDED,
                raw=json_safe(chunk.raw(i)),
                errors={"customer_id": [f"Appears again on line {int(lines[later])}; that later row was used."]},
            )
            for i, later in sorted(superseded.items())
        ]
        out += [
            QuarantinedRow(
                line=bad.line,
                customer_id=json_safe(bad.customer_id)[:200],
                reason=QuarantineReason.MALFORMED,
                raw=json_safe(bad.raw),
                errors=json_safe(bad.errors),
            )
            for bad in chunk.malformed
        ]
        return out

    # writing side

    def commit(self, prepared: Prepared) -> None:
        result = prepared.result
        assert result is not None
        now = timezone.now()
        with transaction.atomic():
            outcome = self.writer.write(
                ChunkWrite(
                    result=result,
                    rows=prepared.rows,
                    completeness=prepared.completeness if prepared.completeness is not None else result.completeness(),
                    source=self.run.source_name,
                    now=now,
                    want_ids=self.rescore,
                    watch=list(prepared.cross),
                )
            )
            # Every customer of the chunk new (a fresh file): none has an outcome to compare a label with.
            recorded = self._record_labels(prepared, all_new=outcome.created == len(prepared.rows))
            deltas = {
                "read": prepared.read,
                "created": outcome.created,
                "updated": outcome.updated,
                "unchanged": outcome.unchanged,
                "rejected": len(prepared.quarantine),
            }
            sums_delta = dict(prepared.sums, outcomes=recorded)
            quarantine = prepared.quarantine + self._superseded_across(prepared, outcome, deltas, sums_delta)
            with self._lock:
                room = max(settings.INGESTION_QUARANTINE_MAX_ROWS - self.quarantine_kept, 0)
                self.quarantine_kept += min(room, len(quarantine))
            sums_delta["not_kept"] = max(len(quarantine) - room, 0)
            quarantine = quarantine[:room]
            for row in quarantine:
                row.run_id = self.run.pk
                row.created_at = row.updated_at = now
            insert_objects(QuarantinedRow, quarantine, batch_size=QUARANTINE_BATCH)
            IngestionChunk.objects.create(
                run_id=self.run.pk,
                index=prepared.index,
                **deltas,
                sums=sums_delta,
            )
            with self._lock:
                counts = {k: self.counts[k] + deltas[k] for k in self.counts}
                sums = _merge_sums(self.sums, sums_delta)
            update: dict[str, Any] = {
                f"{name}_count": F(f"{name}_count") + value for name, value in deltas.items() if value
            }
            if prepared.progress is not None:
                update["progress"] = Greatest(F("progress"), Value(min(max(prepared.progress, 0.0), 1.0)))
            if self.reference is not None and not self.run.checkpoint.get("reference"):
                self.run.checkpoint = {**self.run.checkpoint, "reference": self.reference.to_json()}
                update["checkpoint"] = self.run.checkpoint
            updated = IngestionRun.objects.filter(pk=self.run.pk, worker=self.token).update(
                **update, quality=quality_report(sums, counts["read"]), heartbeat_at=now, updated_at=now
            )
            if updated != 1:
                raise ClaimLost(f"Run {self.run.pk} is no longer held by {self.token}.")
            if prepared.cursor is not None and self.data_source_id is not None:
                DataSource.objects.filter(pk=self.data_source_id).update(
                    cursor_value=json_safe(prepared.cursor), updated_at=now
                )
            transaction.on_commit(lambda: self._after_commit(deltas, outcome.changed_ids))
        with self._lock:
            self.counts = {k: self.counts[k] + deltas[k] for k in self.counts}
            self.sums = _merge_sums(self.sums, sums_delta)
            self._finished.add(prepared.index)
            self._advance()
            self._lock.notify_all()

    def _record_labels(self, prepared: Prepared, *, all_new: bool) -> int:
        """The chunk's churn labels, through the one outcome service: a label equal to the
        customer's latest outcome records nothing. Returns how many outcomes were written."""
        labels, known = prepared.labels, prepared.label_known
        if labels is None or known is None or self.observed_at is None or prepared.result is None:
            return 0
        rows = prepared.rows[known[prepared.rows]]
        if not len(rows):
            return 0
        ids = prepared.result.columns["customer_id"][rows].tolist()
        observed_at, source = self.observed_at, self.outcome_source
        written = outcomes_record(
            outcomes=OutcomeColumns(ids, labels[rows].tolist(), observed_at, source),
            new_customers=frozenset(ids) if all_new else (),
            channel="file" if self.run.source_kind == SourceKind.FILE else "source",
            actor=replace(SYSTEM, department_id=self.run.department_id),
            only_changes=True,
            audit_details={"run_id": str(self.run.pk), "chunk": prepared.index, "source": source},
        )
        return written.created + written.updated

    def _superseded_across(
        self, prepared: Prepared, outcome: WriteOutcome, deltas: dict[str, int], sums: dict[str, Any]
    ) -> list[QuarantinedRow]:
        """Rows of earlier chunks that rows of this chunk replaced: quarantine them, move their counts."""
        started = self.run.started_at
        out = []
        for cid, (earlier_line, line) in prepared.cross.items():
            before = outcome.before.get(cid)
            if before is None or started is None:
                continue
            if before["created_at"] >= started:
                earlier = "created"
            elif before["updated_at"] >= started:
                earlier = "updated"
            else:
                earlier = "unchanged"
            with self._lock:
                available = self.counts[earlier] + deltas[earlier]
            if available <= 0:
                continue  # written by someone else meanwhile: nothing of this run's to move
            now_did = outcome.watched.get(cid, "unchanged")
            # Against the state before the run, the later row did what the earlier one did, unless it changed more.
            later = earlier if now_did == "unchanged" else ("created" if earlier == "created" else "updated")
            deltas[now_did] -= 1
            deltas[later] += 1
            deltas[earlier] -= 1
            deltas["rejected"] += 1
            warned = bool(before["quality_warnings"])
            sums["stored"] = sums.get("stored", 0) - 1
            sums["warned"] = sums.get("warned", 0) - int(warned)
            sums["points"] = sums.get("points", 0.0) - before["quality_completeness"] / 100.0 * (0.5 if warned else 1.0)
            stored = {k: v for k, v in before.items() if k not in ("created_at", "updated_at")}
            out.append(
                QuarantinedRow(
                    line=earlier_line,
                    customer_id=cid,
                    reason=QuarantineReason.SUPERSEDED,
                    raw=json_safe(stored),
                    errors={
                        "customer_id": [
                            f"Appears again on line {line}; that later row was used. "
                            "The values shown are this row's as they were stored."
                        ]
                    },
                )
            )
        return out

    def _after_commit(self, deltas: Mapping[str, int], changed_ids: list[str]) -> None:
        kind = self.run.source_kind
        for name in ("created", "updated", "unchanged", "rejected"):
            if deltas[name] > 0:
                INGESTION_ROWS.labels(source_kind=kind, outcome=name).inc(deltas[name])
        if self.rescore and changed_ids:
            request_rescore(changed_ids, reason=f"ingestion:{self.run.source_name}")


def _last_wins(ids: np.ndarray, valid: np.ndarray) -> tuple[dict[int, int], np.ndarray]:
    """({earlier row: the row that replaces it}, rows to write): the last row of each customer wins."""
    if not len(valid):
        return {}, valid
    series = pd.Series(ids[valid])
    earlier = series.duplicated(keep="last").to_numpy()
    if not earlier.any():
        return {}, valid
    last = pd.Series(valid, index=series.to_numpy()).groupby(level=0, sort=False).last()
    replaced = valid[earlier]
    return dict(zip(replaced.tolist(), last.loc[ids[replaced]].tolist(), strict=True)), valid[~earlier]


def _given_id(column: Any, i: int) -> str:
    if column is None:
        return ""
    value = column.iloc[i] if isinstance(column, pd.Series) else column[i]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return json_safe(str(value)).strip()[:200]


def _present_counts(result: ValidationResult) -> dict[str, int]:
    cols = result.columns
    counts = {"customer_id": int(np.count_nonzero(cols["customer_id"] != None))}  # noqa: E711
    for name in BOOL_FIELDS:
        counts[name] = int(result.given[name].sum()) if name in result.given else result.n
    for name in ENUM_FIELDS:
        codes = result.enum_codes.get(name)
        counts[name] = int((codes >= 0).sum()) if codes is not None else int(np.count_nonzero(cols[name] != None))  # noqa: E711
    for name in NUMBER_FIELDS:
        counts[name] = int((~np.isnan(cols[name])).sum())
    return counts


def _label_given(labels: Any) -> np.ndarray:
    """True where a label cell holds something (readable or not), per row."""
    codes, uniques = pd.factorize(np.asarray(labels, dtype=object), use_na_sentinel=False)
    given = [v is not None and not (isinstance(v, float) and math.isnan(v)) and str(v).strip() != "" for v in uniques]
    return np.array(given, dtype=bool)[codes] if len(uniques) else np.zeros(len(codes), dtype=bool)
