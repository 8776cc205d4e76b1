"""Batch scoring jobs: create, plan into chunks, score the chunks, finish, cancel, watch over.

Lifecycle. ``batch_job_create`` stores a queued job (the active model version is fixed then) and
enqueues ``batch_job_start``, which plans the chunks (customer-pk ranges, pk lists or file parts)
and sends one task per chunk as a Celery group. ``batch_chunk_score`` writes a chunk's
predictions and marks the chunk done in one transaction under a lock on the chunk row, so a
redelivered or duplicated chunk finds it done and writes nothing; the unique (job, customer_id)
index makes the database refuse a second prediction anyway. The chunk that completes the set
enqueues ``batch_job_finish``: final status, per-worker throughput, the results file, the audit
entry and the ``batch_job_finished`` signal. ``batch_jobs_watchdog`` (beat every minute, and
each worker without beat: churn_platform.celery.Watchdogs) re-sends chunks whose messages were
lost and finishes jobs whose last follow-up was lost. A chunk's liveness is its row lock, held by
the scoring transaction for the whole work and released by PostgreSQL as soon as the worker's
connection drops: running, unlocked and started over BATCH_CHUNK_STALE_SECONDS (60) ago is lost.

Lock order: chunk row, then job row (the chunk's counters). Nothing locks them the other way
round except with SKIP LOCKED, so no two of these transactions can deadlock.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Case, CharField, F, QuerySet, Value, When
from django.db.models.functions import Cast, NullIf
from django.utils import timezone

from accounts.services import SYSTEM, Actor, audit_record
from churn_ml.schema import CUSTOMER_ID_PATTERN, RECORD_FIELDS, validate_columns
from churn_ml.stored_factors import expand_factors
from churn_platform import metrics
from churn_platform.csv_cells import SafeCsvWriter
from churn_platform.db import relaxed_commit
from customers.ingestion.readers import open_file_reader
from customers.ingestion.readers.chunks import Chunk
from customers.ingestion.sniff import SAMPLE_BYTES, FileRejected, sniff
from customers.models import Customer
from modelregistry.loader import ModelUnavailable, active_model, load_version
from modelregistry.models import ModelVersion
from predictions import bulk
from predictions.models import (
    FINISHED_JOB_STATUSES,
    BatchChunk,
    BatchChunkStatus,
    BatchJob,
    BatchJobOrigin,
    BatchJobScope,
    BatchJobStatus,
    Prediction,
)
from predictions.signals import batch_job_finished

logger = logging.getLogger(__name__)

OPEN_CHUNK_STATUSES = (BatchChunkStatus.PENDING, BatchChunkStatus.RUNNING)
RESULT_COLUMNS = ("customer_id", "churn_probability", "risk_level", "previous_risk_level", "risk_increased",
                  "model_version", "top_factors", "prediction_id")
MAX_REJECTED_SAMPLE = 100
_ID_BATCH = 5_000
_ID_HEADERS = ("customer_id", "customerID")


class BatchJobInputError(Exception):
    """The job cannot be created as asked; ``errors`` maps fields to messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


class BatchJobStateError(Exception):
    """The job is not in a state that allows this action."""


# --- create -----------------------------------------------------------------------------------


def customer_filter(filters: Mapping[str, Any], queryset: QuerySet | None = None) -> QuerySet:
    """Customers matching the customer list's filters (GET /customers/?...), validated."""
    from customers.api.filters import CustomerFilter

    unknown = sorted(set(filters) - set(CustomerFilter.base_filters))
    if unknown:
        allowed = ", ".join(sorted(CustomerFilter.base_filters))
        raise BatchJobInputError({f"filter.{name}": [f"Unknown filter; use one of {allowed}."] for name in unknown})
    data = {k: ("true" if v is True else "false" if v is False else v) for k, v in filters.items()}
    filterset = CustomerFilter(data=data, queryset=queryset if queryset is not None else Customer.objects.all())
    if not filterset.is_valid():
        raise BatchJobInputError({f"filter.{k}": [str(m) for m in v] for k, v in filterset.errors.items()})
    return filterset.qs


def _clean_ids(customer_ids: Any) -> list[str]:
    if not isinstance(customer_ids, list) or not customer_ids:
        raise BatchJobInputError({"customer_ids": ["Expected a non-empty list of customer ids."]})
    limit = settings.BATCH_JOB_MAX_IDS
    if len(customer_ids) > limit:
        raise BatchJobInputError({"customer_ids": [f"At most {limit} ids per job; got {len(customer_ids)}."]})
    bad = [i for i, cid in enumerate(customer_ids)
           if not isinstance(cid, str) or CUSTOMER_ID_PATTERN.fullmatch(cid.strip()) is None]
    if bad:
        shown = ", ".join(str(i) for i in bad[:10])
        raise BatchJobInputError({"customer_ids": [f"Not a valid customer id at index {shown}."]})
    return list(dict.fromkeys(cid.strip() for cid in customer_ids))


@dataclass(frozen=True)
class _FileLayout:
    delimiter: str
    ids_only: bool
    details: dict[str, Any]  # the ingestion reader's description of the file (format, columns, layout)


def _file_layout(upload: UploadedFile) -> _FileLayout:
    """Read the header: a single id column, or records read by the ingestion reader (contract or Telco layout)."""
    upload.seek(0)
    sample = upload.read(SAMPLE_BYTES)
    upload.seek(0)
    try:
        fmt = sniff(sample)
    except FileRejected as exc:
        raise BatchJobInputError({"file": [str(exc)]}) from None
    if fmt.kind != "csv":
        raise BatchJobInputError({"file": [
            "Batch jobs read CSV files: records in the contract's or the Telco layout, or one customer_id column. "
            "Send JSON records to POST predictions/batch/ or POST ingestions/."
        ]})  # fmt: skip
    first = sample[fmt.bom_bytes :].decode(fmt.encoding, errors="replace").splitlines()[0]
    header = [h.strip() for h in next(csv.reader([first], delimiter=fmt.delimiter), [])]
    if len(header) == 1 and header[0] in _ID_HEADERS:
        return _FileLayout(fmt.delimiter, ids_only=True, details={})
    try:
        reader = open_file_reader(upload, size=upload.size, chunk_rows=settings.BATCH_CHUNK_SIZE)
    except FileRejected as exc:
        raise BatchJobInputError({"file": [str(exc)]}) from None
    finally:
        upload.seek(0)
    return _FileLayout(fmt.delimiter, ids_only=False, details=reader.details)


def _ids_from_file(upload: UploadedFile, layout: _FileLayout) -> list[str]:
    upload.seek(0)
    try:
        frame = pd.read_csv(upload, dtype=str, keep_default_na=False, sep=layout.delimiter, encoding="utf-8-sig",
                            encoding_errors="replace")  # fmt: skip
    except pd.errors.ParserError as exc:  # a list of ids has no rows to keep apart: say what is wrong with it
        raise BatchJobInputError({"file": [f"The list of customer ids cannot be read as CSV: {exc}"]}) from None
    ids = [cid for cid in frame.iloc[:, 0].str.strip().tolist() if cid]
    return _clean_ids(ids)


@transaction.atomic
def batch_job_create(
    *,
    scope: str = BatchJobScope.ALL,
    filters: Mapping[str, Any] | None = None,
    customer_ids: Sequence[str] | None = None,
    upload: UploadedFile | None = None,
    actor: Actor = SYSTEM,
    origin: str = BatchJobOrigin.API,
    chunk_size: int | None = None,
) -> BatchJob:
    """Queue a scoring job over all customers, a filter, a list of ids or an uploaded file.

    The active model version is fixed now, so a promotion during the job does not mix versions.
    Raises BatchJobInputError for a bad scope, ModelUnavailable when no model is active.
    """
    clean_filters: dict[str, Any] = {}
    ids: list[str] = []
    layout = None
    if scope == BatchJobScope.FILTER:
        if not isinstance(filters, Mapping) or not filters:
            raise BatchJobInputError({"filter": ["Expected an object with at least one customer filter."]})
        customer_filter(filters)
        clean_filters = dict(filters)
    elif scope == BatchJobScope.IDS:
        ids = _clean_ids(list(customer_ids) if customer_ids is not None else None)
    elif scope == BatchJobScope.FILE:
        if upload is None:
            raise BatchJobInputError({"file": ["No file was uploaded."]})
        if upload.size is not None and upload.size > settings.BATCH_JOB_MAX_UPLOAD_BYTES:
            raise BatchJobInputError({"file": [
                f"The file is {upload.size} bytes; at most {settings.BATCH_JOB_MAX_UPLOAD_BYTES} are accepted."
            ]})
        layout = _file_layout(upload)
        if layout.ids_only:
            # A file of ids is the same job as a list of ids: score those stored customers.
            ids, scope = _ids_from_file(upload, layout), BatchJobScope.IDS
    elif scope != BatchJobScope.ALL:
        raise BatchJobInputError({"scope": [f"Unknown scope {scope!r}; use all, filter, ids or file."]})
    size = chunk_size or settings.BATCH_CHUNK_SIZE
    if size <= 0:
        raise BatchJobInputError({"chunk_size": ["Must be a positive number of customers."]})

    model = active_model()
    job = BatchJob.objects.create(
        scope=scope,
        filters=clean_filters,
        customer_ids=ids,
        input_name=(upload.name or "")[:255] if upload is not None else "",
        model_version_id=model.version_id,
        origin=origin,
        chunk_size=size,
        requested_by=actor.label[:200],
        requested_by_user=actor.user if actor.user is not None and actor.user.pk else None,
        requested_by_key_id=actor.api_key_id,
        department_id=actor.department_id,
    )
    if scope == BatchJobScope.FILE and upload is not None:
        upload.seek(0)
        job.input_file.save(f"job-{job.pk}.csv", upload, save=False)
        job.details = {"file": layout.details} if layout else {}
        job.save(update_fields=["input_file", "details", "updated_at"])
    audit_record(actor=actor, action="batch_job.create", obj=job, details={
        "scope": scope, "origin": origin, "model_version": model.version, "filters": clean_filters,
        "customer_ids": len(ids), "file": job.input_name,
    })
    job_id = job.pk
    transaction.on_commit(lambda: _send_start(job_id))
    return job


def _send_start(job_id: int) -> None:
    from predictions.tasks import batch_job_start

    batch_job_start.delay(job_id=job_id)


# --- start: plan and dispatch -----------------------------------------------------------------


def batch_job_start(*, job_id: int) -> list[int]:
    """Plan a queued job's chunks and send them; for a running job re-send its unfinished chunks.

    Safe to deliver twice: planning happens once, under the job's lock, and re-sending a chunk
    is harmless. Returns the ids of the chunks sent.
    """
    try:
        return _start(job_id)
    except (OperationalError, InterfaceError):
        raise  # transient: the task retries
    except Exception as exc:  # the scope cannot be planned (an unreadable file...): say so on the job
        logger.exception("Batch job %s could not be planned", job_id)
        _fail_job(job_id, f"{type(exc).__name__}: {exc}")
        return []


def _fail_job(job_id: int, error: str) -> None:
    with transaction.atomic():
        job = BatchJob.objects.select_for_update().get(pk=job_id)
        if job.is_finished:
            return
        now = timezone.now()
        job.status = BatchJobStatus.FAILED
        job.error = error[:5000]
        job.finished_at = now
        job.duration_seconds = round((now - (job.started_at or job.created_at)).total_seconds(), 3)
        job.save(update_fields=["status", "error", "finished_at", "duration_seconds", "updated_at"])
        audit_record(actor=SYSTEM, action="batch_job.finish", obj=job, outcome="failure",
                     details={"status": job.status, "error": job.error})


def _start(job_id: int) -> list[int]:
    with transaction.atomic():
        job = BatchJob.objects.select_for_update().get(pk=job_id)
        if job.is_finished:
            return []
        if job.status == BatchJobStatus.QUEUED:
            _plan(job)
        now = timezone.now()
        open_chunks = list(job.chunks.filter(status__in=OPEN_CHUNK_STATUSES).values_list("pk", flat=True))
        BatchChunk.objects.filter(pk__in=open_chunks).update(dispatched_at=now, updated_at=now)
        if not open_chunks:
            transaction.on_commit(lambda: _send_finish(job_id))
        else:
            transaction.on_commit(lambda: _send_chunks(open_chunks))
    return open_chunks


def _send_chunks(chunk_ids: Sequence[int]) -> None:
    from celery import group

    from predictions.tasks import batch_job_score_chunk

    group(batch_job_score_chunk.si(chunk_id=pk) for pk in chunk_ids).apply_async()


def _send_finish(job_id: int) -> None:
    from predictions.tasks import batch_job_finish

    batch_job_finish.delay(job_id=job_id)


def _plan(job: BatchJob) -> None:
    """Split the job into chunks; record the rows that fail before scoring (unknown ids, duplicates)."""
    pre_failed = 0
    if job.scope == BatchJobScope.ALL:
        chunks = _plan_ranges(job, Customer.objects.all())
    elif job.scope == BatchJobScope.FILTER:
        chunks = _plan_ranges(job, customer_filter(job.filters))
    elif job.scope == BatchJobScope.IDS:
        chunks, unknown = _plan_ids(job)
        pre_failed = len(unknown)
        if unknown:
            job.details = {**job.details, "unknown_customer_ids": unknown[:MAX_REJECTED_SAMPLE],
                           "unknown_count": len(unknown)}
    else:
        chunks, rejected, rejected_count = _plan_file(job)
        pre_failed = rejected_count
        if rejected:
            job.details = {**job.details, "rejected": rejected}
    BatchChunk.objects.bulk_create(chunks)
    job.status = BatchJobStatus.RUNNING
    job.started_at = timezone.now()
    job.chunk_count = len(chunks)
    job.total = sum(c.size for c in chunks) + pre_failed
    job.failed = pre_failed
    job.save(update_fields=["status", "started_at", "chunk_count", "total", "failed", "details", "updated_at"])


def _plan_ranges(job: BatchJob, customers: QuerySet) -> list[BatchChunk]:
    """Chunks of chunk_size customers as pk ranges, from one window-function pass over the pks."""
    sql, params = customers.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            # The inner query is Django's own SQL with its parameters passed separately.
            "SELECT pk, cnt, top FROM (SELECT t.pk, ROW_NUMBER() OVER (ORDER BY t.pk) AS rn, "  # noqa: S608
            "COUNT(*) OVER () AS cnt, MAX(t.pk) OVER () AS top FROM (" + sql + ") t) s "
            "WHERE (rn - 1) %% %s = 0 ORDER BY pk",
            [*params, job.chunk_size],
        )
        starts = cursor.fetchall()
    if not starts:
        return []
    total, top = starts[0][1], starts[0][2]
    chunks = []
    for i, (low, _, _) in enumerate(starts):
        high = starts[i + 1][0] - 1 if i + 1 < len(starts) else top
        size = min(job.chunk_size, total - i * job.chunk_size)
        chunks.append(BatchChunk(job=job, index=i, pk_low=low, pk_high=high, size=size))
    return chunks


def _plan_ids(job: BatchJob) -> tuple[list[BatchChunk], list[str]]:
    found: dict[str, int] = {}
    ids = list(job.customer_ids)
    for start in range(0, len(ids), _ID_BATCH):
        rows = Customer.objects.filter(customer_id__in=ids[start : start + _ID_BATCH]).values_list("customer_id", "pk")
        found.update(rows)
    unknown = [cid for cid in ids if cid not in found]
    pks = sorted(found.values())
    chunks = [
        BatchChunk(job=job, index=i, customer_pks=pks[start : start + job.chunk_size],
                   size=len(pks[start : start + job.chunk_size]))
        for i, start in enumerate(range(0, len(pks), job.chunk_size))
    ]
    return chunks, unknown


def _part_name(job: BatchJob, index: int) -> str:
    return f"batch_jobs/parts/job-{job.pk}/part-{index:05d}.csv"


def _plan_file(job: BatchJob) -> tuple[list[BatchChunk], list[dict[str, Any]], int]:
    """Split the uploaded file into parts of chunk_size rows, read by the ingestion reader (streamed).

    As in ingestion, a line that cannot be read (a quote left open, a wrong number of fields) is
    rejected with its line number and the reason, and the rest of the file is read; and the last
    row of a customer wins, earlier ones rejected as superseded: a job scores each customer once.
    Two passes: the first finds each customer's last line, the second writes the parts.
    """
    last: dict[str, int] = {}
    for chunk in _file_chunks(job):
        last.update(zip(_chunk_ids(chunk), chunk.lines.tolist(), strict=True))
    last.pop("", None)
    rejected: list[dict[str, Any]] = []
    rejected_count = 0
    chunks: list[BatchChunk] = []
    pending: list[pd.DataFrame] = []

    def reject(row: dict[str, Any]) -> None:
        nonlocal rejected_count
        rejected_count += 1
        if len(rejected) < MAX_REJECTED_SAMPLE:
            rejected.append(row)

    def write_parts(final: bool) -> None:
        rows = sum(len(p) for p in pending)
        while rows >= job.chunk_size or (final and rows):
            frame = pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0]
            part, rest = frame.iloc[: job.chunk_size], frame.iloc[job.chunk_size :]
            pending[:] = [rest] if len(rest) else []
            rows = len(rest)
            index = len(chunks)
            name = _part_name(job, index)
            if default_storage.exists(name):
                default_storage.delete(name)
            default_storage.save(name, io.BytesIO(part.to_csv(index=False).encode()))
            chunks.append(BatchChunk(job=job, index=index, part_name=name, size=len(part)))

    for chunk in _file_chunks(job):
        for bad in chunk.malformed:
            reject({"line": bad.line, "customer_id": bad.customer_id, "errors": bad.errors})
        ids = _chunk_ids(chunk)
        lines = chunk.lines.tolist()
        keep = np.array([not cid or last[cid] == line for cid, line in zip(ids, lines, strict=True)], dtype=bool)
        for i in np.flatnonzero(~keep):
            reject({"line": lines[i], "customer_id": ids[i], "errors": {
                "customer_id": [f"Appears again on line {last[ids[i]]}; that later row was used."]}})  # fmt: skip
        if keep.any():
            columns = {name: np.asarray(pd.Series(col).astype(str), dtype=object)[keep]
                       for name, col in chunk.columns.items()}  # fmt: skip
            pending.append(pd.DataFrame({"line": np.asarray(chunk.lines)[keep], **columns}))
            write_parts(final=False)
    if pending:
        write_parts(final=True)
    rejected.sort(key=lambda r: r["line"])
    return chunks, rejected, rejected_count


def _file_chunks(job: BatchJob) -> Iterator[Chunk]:
    with job.input_file.open("rb") as raw:
        yield from open_file_reader(raw, size=job.input_file.size, chunk_rows=job.chunk_size).chunks()


def _chunk_ids(chunk: Chunk) -> list[str]:
    return [str(cid).strip() for cid in chunk.columns["customer_id"]]


# --- score one chunk --------------------------------------------------------------------------

_scorers: dict[int, Any] = {}


def _scorer(version_id: int) -> Any:
    """The job's model version, loaded once per process (the active one is usually loaded already)."""
    cached = _scorers.get(version_id)
    if cached is not None:
        return cached
    try:
        loaded = active_model()
        if loaded.version_id == version_id:
            _scorers[version_id] = loaded.scorer
            return loaded.scorer
    except ModelUnavailable:  # none active is fine: the job names its own version
        logger.debug("no active model; loading the job's version", exc_info=True)
    scorer = load_version(ModelVersion.objects.get(pk=version_id)).scorer
    if len(_scorers) >= 2:
        _scorers.pop(next(iter(_scorers)))
    _scorers[version_id] = scorer
    return scorer


def _chunk_input(job: BatchJob, chunk: BatchChunk) -> bulk.ChunkInput:
    if job.scope == BatchJobScope.FILE:
        with default_storage.open(chunk.part_name, "rb") as fh:
            part = pd.read_csv(fh, dtype=str, keep_default_na=False)
        lines = part.pop("line").astype(int).tolist()
        columns = {name: part[name].to_numpy(dtype=object) for name in part.columns if name in RECORD_FIELDS}
        return bulk.file_part_input(validate_columns(columns, len(part)), lines, MAX_REJECTED_SAMPLE)
    customers = Customer.objects.all()
    if chunk.customer_pks is not None:
        customers = customers.filter(pk__in=chunk.customer_pks)
    else:
        customers = customers.filter(pk__gte=chunk.pk_low, pk__lte=chunk.pk_high)
        if job.scope == BatchJobScope.FILTER:
            customers = customer_filter(job.filters, customers)
    return bulk.read_stored_customers(customers)


def batch_chunk_score(*, chunk_id: int, worker: str = "") -> bulk.ChunkResult | None:
    """Score one chunk and write its predictions; None when there was nothing (left) to do.

    Safe to deliver twice and to kill at any point: the predictions and the done mark commit
    together, and a second delivery waits for the first one's lock and then finds the chunk done.
    """
    with transaction.atomic():
        chunk = BatchChunk.objects.select_for_update(of=("self",)).select_related("job").get(pk=chunk_id)
        if chunk.status not in OPEN_CHUNK_STATUSES:
            return None
        if chunk.job.status == BatchJobStatus.CANCELLED:
            chunk.status = BatchChunkStatus.CANCELLED
            chunk.save(update_fields=["status", "updated_at"])
            return None
        # Committed before the work so operators see who is on which chunk and how often it ran.
        chunk.status = BatchChunkStatus.RUNNING
        chunk.attempts += 1
        chunk.worker = worker[:200]
        chunk.started_at = timezone.now()
        chunk.save(update_fields=["status", "attempts", "worker", "started_at", "updated_at"])

    started = time.perf_counter()
    marks: dict[str, float] = {}
    # Not waiting for the WAL flush is safe here: a database crash that loses this commit leaves
    # the chunk not done, and the watchdog sends it again (its message is acknowledged by then).
    with relaxed_commit():
        chunk = (
            BatchChunk.objects.select_for_update(of=("self",)).select_related("job__model_version").get(pk=chunk_id)
        )
        if chunk.status != BatchChunkStatus.RUNNING:
            return None  # another delivery finished it while this one waited for the lock
        job = chunk.job
        scorer = _scorer(job.model_version_id)
        from predictions.tier_actions import tier_actions


        data = _chunk_input(job, chunk)
        read_seconds = time.perf_counter() - started
        tiers = tier_actions()
        context = bulk.WriteContext(
            job_id=job.pk, model_version_id=job.model_version_id, model_version=job.model_version.version,
            recommendations={level: tier.recommendations for level, tier in tiers.items()},
            offers={level: tier.offer for level, tier in tiers.items()},
            created_at=timezone.now(), results_csv=settings.BATCH_JOB_OUTPUT_FILE,
        )
        result = bulk.score_and_write(data, scorer, context)
        result.timings["read"] = round(read_seconds, 4)
        if result.results_csv is not None:
            # Before the commit: a chunk marked done always has its part of the results file.
            _save(_result_part_name(job.pk, chunk.index), io.BytesIO(result.results_csv))
            result.results_csv = None
        now = timezone.now()
        chunk.status = BatchChunkStatus.DONE
        chunk.scored, chunk.failed, chunk.risk_increased = result.scored, result.failed, result.risk_increased
        chunk.errors = result.rejected[:MAX_REJECTED_SAMPLE]
        chunk.timings = result.timings
        chunk.finished_at = now
        chunk.duration_seconds = round(time.perf_counter() - started, 4)
        chunk.save()
        # Registered before the finish (callbacks run in order), so the job's per-worker figures
        # include the commit, where the deferred foreign-key checks of the chunk's rows run.
        transaction.on_commit(lambda: _record_commit(chunk_id, started, marks, dict(result.timings)))
        _count_chunk(job.pk, scored=result.scored, failed=result.failed, risk_increased=result.risk_increased)
        marks["commit"] = time.perf_counter()
    metrics.BATCH_CHUNK_DURATION.observe(time.perf_counter() - started)
    metrics.BATCH_JOB_ROWS.labels(outcome="scored").inc(result.scored)
    if result.failed:
        metrics.BATCH_JOB_ROWS.labels(outcome="failed").inc(result.failed)
    return result


def _record_commit(chunk_id: int, started: float, marks: Mapping[str, float], timings: dict[str, float]) -> None:
    now = time.perf_counter()
    timings["commit"] = round(now - marks.get("commit", now), 4)
    BatchChunk.objects.filter(pk=chunk_id).update(duration_seconds=round(now - started, 4), timings=timings)


def _count_chunk(job_id: int, *, scored: int, failed: int, risk_increased: int) -> None:
    """Add a finished chunk to its job; the chunk that completes the set sends the finish."""
    BatchJob.objects.filter(pk=job_id).update(
        scored=F("scored") + scored, failed=F("failed") + failed, risk_increased=F("risk_increased") + risk_increased,
        chunks_done=F("chunks_done") + 1, updated_at=timezone.now(),
    )
    # Read after the UPDATE took the job row's lock: a chunk committing at the same moment is
    # either counted here or sees this one, so exactly one of them sends the finish.
    done, count = BatchJob.objects.filter(pk=job_id).values_list("chunks_done", "chunk_count").get()
    if done >= count:
        transaction.on_commit(lambda: _send_finish(job_id))


def batch_chunk_fail(*, chunk_id: int, error: str) -> None:
    """Give up on a chunk (a non-transient error, or retries used up): its rows count as failed."""
    with transaction.atomic():
        chunk = BatchChunk.objects.select_for_update().get(pk=chunk_id)
        if chunk.status not in OPEN_CHUNK_STATUSES:
            return
        chunk.status = BatchChunkStatus.FAILED
        chunk.error = error[:5000]
        chunk.finished_at = timezone.now()
        chunk.save(update_fields=["status", "error", "finished_at", "updated_at"])
        _count_chunk(chunk.job_id, scored=0, failed=chunk.size, risk_increased=0)
    metrics.BATCH_JOB_ROWS.labels(outcome="failed").inc(chunk.size)
    logger.error("Batch job %s chunk %s failed: %s", chunk.job_id, chunk.index, error)


# --- finish -----------------------------------------------------------------------------------


def batch_job_finish(*, job_id: int) -> BatchJob:
    """Close a job whose chunks have all run: status, throughput per worker, results file, audit, signal."""
    with transaction.atomic():
        job = BatchJob.objects.select_for_update().get(pk=job_id)
        if job.is_finished or job.chunks.filter(status__in=OPEN_CHUNK_STATUSES).exists():
            return job
        now = timezone.now()
        if job.failed == 0:
            job.status = BatchJobStatus.SUCCEEDED
        elif job.scored:
            job.status = BatchJobStatus.PARTIALLY_SUCCEEDED
        else:
            job.status = BatchJobStatus.FAILED
            job.error = job.error or "No customer could be scored."
        job.total = job.scored + job.failed
        job.started_at = job.started_at or now
        job.finished_at = now
        job.duration_seconds = round((now - job.started_at).total_seconds(), 3)
        job.details = {**job.details, "workers": _worker_figures(job)}
        if settings.BATCH_JOB_OUTPUT_FILE and job.scored:
            try:
                _write_results_file(job)
            except OSError as exc:
                # The predictions are stored; results/ streams them from the database instead.
                logger.exception("Batch job %s: results file not written", job.pk)
                job.error = f"The results file could not be written ({exc}); results/ reads the database."
        job.save()
        if job.scope == BatchJobScope.FILE:
            _delete_parts(job)
        audit_record(actor=SYSTEM, action="batch_job.finish", obj=job, details={
            "status": job.status, "total": job.total, "scored": job.scored, "failed": job.failed,
            "risk_increased": job.risk_increased, "duration_seconds": job.duration_seconds,
        })
        transaction.on_commit(lambda: batch_job_finished.send(sender=BatchJob, job=job))
    metrics.BATCH_JOB_DURATION.observe(job.duration_seconds or 0.0)
    logger.info("Batch job %s %s: %s scored, %s failed, %s risk increased in %.1f s", job.pk, job.status,
                job.scored, job.failed, job.risk_increased, job.duration_seconds or 0.0)
    return job


def _delete_parts(job: BatchJob) -> None:
    """The uploaded file's parts are only needed while the chunks run; the upload itself stays."""
    for name in job.chunks.exclude(part_name="").values_list("part_name", flat=True):
        if default_storage.exists(name):
            default_storage.delete(name)
    with contextlib.suppress(NotImplementedError, OSError):
        os.rmdir(default_storage.path(_part_name(job, 0)).rsplit(os.sep, 1)[0])


def _worker_figures(job: BatchJob) -> dict[str, dict[str, float]]:
    """Rows, busy seconds and rows per busy second of each worker process: how the job scaled."""
    figures: dict[str, dict[str, float]] = {}
    rows = job.chunks.filter(status=BatchChunkStatus.DONE).values_list("worker", "scored", "duration_seconds")
    for worker, scored, seconds in rows:
        entry = figures.setdefault(worker or "unknown", {"chunks": 0, "rows": 0, "busy_seconds": 0.0})
        entry["chunks"] += 1
        entry["rows"] += scored
        entry["busy_seconds"] += seconds or 0.0
    for entry in figures.values():
        entry["busy_seconds"] = round(entry["busy_seconds"], 3)
        entry["rows_per_second"] = round(entry["rows"] / entry["busy_seconds"], 1) if entry["busy_seconds"] else 0.0
    return figures


def batch_job_results(job: BatchJob) -> QuerySet:
    """The job's predictions as result rows (RESULT_COLUMNS), in customer_id order."""
    return (
        Prediction.objects.filter(batch_job=job)
        .order_by("customer_id")
        .annotate(
            previous=NullIf("previous_risk_level", Value("")),
            increased=Case(When(risk_increased=True, then=Value("true")), default=Value("false"),
                           output_field=CharField()),
            version=F("model_version__version"),
            factors=Cast("top_factors", output_field=CharField()),
        )
        .values_list("customer_id", "churn_probability", "risk_level", "previous", "increased", "version", "factors",
                     "prediction_id")
    )


def results_csv_rows(job: BatchJob) -> Iterator[str]:
    """The results CSV, header first, streamed from the database in pages."""
    buffer = io.StringIO()
    writer = SafeCsvWriter(buffer, lineterminator="\n")
    writer.writerow(RESULT_COLUMNS)
    yield buffer.getvalue()
    rows = batch_job_results(job).iterator(chunk_size=5_000)
    while True:
        buffer.seek(0)
        buffer.truncate()
        n = 0
        for row in rows:
            # The stored factors ([feature, impact] pairs) as the contract's objects.
            factors = json.dumps(expand_factors(json.loads(row[6])), separators=(",", ":"))
            writer.writerow((*row[:6], factors, *row[7:]))
            n += 1
            if n == 5_000:
                break
        if not n:
            return
        yield buffer.getvalue()


def _result_part_name(job_id: int, index: int) -> str:
    return f"batch_jobs/results/job-{job_id}/part-{index:05d}.csv"


def _save(name: str, content: Any) -> None:
    """Write a file under a fixed name (a redone chunk replaces its earlier part)."""
    if default_storage.exists(name):
        default_storage.delete(name)
    default_storage.save(name, File(content, name=name.rsplit("/", 1)[-1]))


class _Concatenated(io.RawIOBase):
    """A readable stream over several files one after the other (the results parts)."""

    def __init__(self, header: bytes, names: Sequence[str]) -> None:
        self._pending = [io.BytesIO(header), *(lambda n=n: default_storage.open(n, "rb") for n in names)]
        self._current: Any = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while True:
            if self._current is None:
                if not self._pending:
                    return 0
                item = self._pending.pop(0)
                self._current = item if isinstance(item, io.BytesIO) else item()
            data = self._current.read(len(buffer))
            if data:
                buffer[: len(data)] = data
                return len(data)
            self._current.close()
            self._current = None


def _write_results_file(job: BatchJob) -> None:
    """The results CSV in storage: the chunks' parts joined in chunk order, or (parts missing) a COPY."""
    done = list(job.chunks.filter(status=BatchChunkStatus.DONE, scored__gt=0).values_list("index", flat=True))
    parts = [_result_part_name(job.pk, i) for i in done]
    header = (",".join(RESULT_COLUMNS) + "\n").encode()
    name = f"batch_jobs/results/job-{job.pk}.csv"
    if all(default_storage.exists(p) for p in parts):
        _save(name, io.BufferedReader(_Concatenated(header, parts), buffer_size=1 << 20))
    else:
        # Written by Python, not COPY TO, so that every cell passes the one formula guard.
        with tempfile.TemporaryFile("w+b") as tmp:
            for piece in results_csv_rows(job):
                tmp.write(piece.encode())
            tmp.seek(0)
            _save(name, tmp)
    job.output_file.name = name
    for part in parts:
        if default_storage.exists(part):
            default_storage.delete(part)
    # Not a local file system, or the directory is gone already: nothing to tidy.
    with contextlib.suppress(NotImplementedError, OSError):
        os.rmdir(default_storage.path(_result_part_name(job.pk, 0)).rsplit(os.sep, 1)[0])


# --- operator actions -------------------------------------------------------------------------


@transaction.atomic
def batch_job_cancel(*, job_id: int, actor: Actor) -> BatchJob:
    """Stop a job: chunks not started yet are skipped; chunks already written stay."""
    job = BatchJob.objects.select_for_update().get(pk=job_id)
    if job.is_finished:
        raise BatchJobStateError(f"Job {job.pk} is already {job.status}.")
    now = timezone.now()
    job.status = BatchJobStatus.CANCELLED
    job.finished_at = now
    job.duration_seconds = round((now - (job.started_at or job.created_at)).total_seconds(), 3)
    job.save(update_fields=["status", "finished_at", "duration_seconds", "updated_at"])
    audit_record(actor=actor, action="batch_job.cancel", obj=job, details={"scored": job.scored})
    return job


def batch_job_resume(*, job_id: int, actor: Actor) -> list[int]:
    """Send a running job's unfinished chunks again (after an outage); duplicates are harmless."""
    job = BatchJob.objects.get(pk=job_id)
    if job.is_finished:
        raise BatchJobStateError(f"Job {job.pk} is already {job.status}.")
    sent = batch_job_start(job_id=job_id)
    with transaction.atomic():
        audit_record(actor=actor, action="batch_job.resume", obj=job, details={"chunks": len(sent)})
    return sent


def batch_job_schedule_full(*, origin: str = BatchJobOrigin.SCHEDULE, actor: Actor = SYSTEM) -> BatchJob | None:
    """Start the nightly full scoring, unless a full job of the same origin is still queued or running."""
    busy = BatchJob.objects.filter(scope=BatchJobScope.ALL, origin=origin).exclude(status__in=FINISHED_JOB_STATUSES)
    if busy.exists():
        logger.warning("Full scoring not started: job %s is still %s", busy.first().pk, busy.first().status)
        return None
    return batch_job_create(scope=BatchJobScope.ALL, actor=actor, origin=origin)


def batch_jobs_watchdog(*, now: datetime | None = None, queue_depth: int | None = None) -> dict[str, int]:
    """Re-send chunks whose messages were lost, finish jobs whose finish was lost, restart lost starts.

    A chunk is lost when it is marked running, nobody holds its lock, and it started longer ago
    than BATCH_CHUNK_STALE_SECONDS (its worker died and Redis has not handed the message back
    yet), or when it is still pending that long after dispatch while the batch queue is empty.
    """
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.BATCH_CHUNK_STALE_SECONDS)
    if queue_depth is None:
        from predictions.operations import queue_depths

        depths = queue_depths()
        queue_depth = depths.get("batch") if depths is not None else None
    summary = {"chunks_resent": 0, "jobs_finished": 0, "jobs_restarted": 0}
    # A queued job behind a busy batch queue is waiting, not lost.
    queued = BatchJob.objects.filter(status=BatchJobStatus.QUEUED, created_at__lt=stale_before)
    for job_id in queued.values_list("pk", flat=True) if queue_depth in (0, None) else ():
        _send_start(job_id)
        summary["jobs_restarted"] += 1
    for job in BatchJob.objects.filter(status=BatchJobStatus.RUNNING):
        with transaction.atomic():
            # SKIP LOCKED: a chunk being scored holds its lock and is not lost.
            open_chunks = job.chunks.select_for_update(skip_locked=True).filter(status__in=OPEN_CHUNK_STATUSES)
            lost = [
                c.pk for c in open_chunks.only("pk", "status", "started_at", "dispatched_at")
                if (c.status == BatchChunkStatus.RUNNING and c.started_at and c.started_at < stale_before)
                or (c.status == BatchChunkStatus.PENDING and queue_depth == 0
                    and (c.dispatched_at is None or c.dispatched_at < stale_before))
            ]
            if lost:
                BatchChunk.objects.filter(pk__in=lost).update(dispatched_at=now, updated_at=now)
                transaction.on_commit(lambda lost=lost: _send_chunks(lost))
                summary["chunks_resent"] += len(lost)
        if not job.chunks.filter(status__in=OPEN_CHUNK_STATUSES).exists():
            _send_finish(job.pk)
            summary["jobs_finished"] += 1
    if any(summary.values()):
        logger.warning("Batch watchdog: %s", summary)
    return summary


def worker_label() -> str:
    """host:pid of this process, as chunks record who scored them."""
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"
