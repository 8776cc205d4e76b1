"""Starting a job: planning its chunks (customer-pk ranges, id lists or file parts) and sending them."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
from django.core.files.storage import default_storage
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.services import SYSTEM, audit_record
from churn_ml.deferred import deferred
from customers.ingestion.readers import open_file_reader
from customers.ingestion.readers.chunks import Chunk
from customers.models import Customer
from predictions.batch_jobs.common import MAX_REJECTED_SAMPLE, OPEN_CHUNK_STATUSES
from predictions.batch_jobs.create import customer_filter
from predictions.batch_jobs.dispatch import send_chunks, send_finish
from predictions.models import BatchChunk, BatchJob, BatchJobScope, BatchJobStatus

# pandas loads on first use (churn_ml.deferred): a web worker that scores single records never needs it.
pd = deferred("pandas")

logger = logging.getLogger(__name__)


_ID_BATCH = 5_000


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
        audit_record(
            actor=SYSTEM,
            action="batch_job.finish",
            obj=job,
            outcome="failure",
            details={"status": job.status, "error": job.error},
        )


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
            transaction.on_commit(lambda: send_finish(job_id))
        else:
            transaction.on_commit(lambda: send_chunks(open_chunks))
    return open_chunks


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
            job.details = {
                **job.details,
                "unknown_customer_ids": unknown[:MAX_REJECTED_SAMPLE],
                "unknown_count": len(unknown),
            }
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
        BatchChunk(
            job=job,
            index=i,
            customer_pks=pks[start : start + job.chunk_size],
            size=len(pks[start : start + job.chunk_size]),
        )
        for i, start in enumerate(range(0, len(pks), job.chunk_size))
    ]
    return chunks, unknown


def part_name(job: BatchJob, index: int) -> str:
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
            name = part_name(job, index)
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
