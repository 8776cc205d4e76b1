"""Scoring one chunk: its predictions and its done mark in one transaction under the chunk's lock."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from churn_infra import metrics
from churn_infra.db import relaxed_commit
from churn_ml.deferred import deferred
from churn_ml.schema import RECORD_FIELDS, validate_columns
from customers.models import Customer
from modelregistry.loader import ModelUnavailable, active_model, load_version
from modelregistry.models import ModelVersion
from predictions import bulk
from predictions.batch_jobs.common import MAX_REJECTED_SAMPLE, OPEN_CHUNK_STATUSES
from predictions.batch_jobs.create import customer_filter
from predictions.batch_jobs.dispatch import send_finish
from predictions.batch_jobs.results import result_part_name, store_file
from predictions.models import BatchChunk, BatchChunkStatus, BatchJob, BatchJobScope, BatchJobStatus
from predictions.tier_actions import tier_actions

# pandas loads on first use (churn_ml.deferred): a web worker that scores single records never needs it.
pd = deferred("pandas")

logger = logging.getLogger(__name__)


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
        chunk = BatchChunk.objects.select_for_update(of=("self",)).select_related("job__model_version").get(pk=chunk_id)
        if chunk.status != BatchChunkStatus.RUNNING:
            return None  # another delivery finished it while this one waited for the lock
        job = chunk.job
        scorer = _scorer(job.model_version_id)
        data = _chunk_input(job, chunk)
        read_seconds = time.perf_counter() - started
        tiers = tier_actions()
        context = bulk.WriteContext(
            job_id=job.pk,
            model_version_id=job.model_version_id,
            model_version=job.model_version.version,
            recommendations={level: tier.recommendations for level, tier in tiers.items()},
            offers={level: tier.offer for level, tier in tiers.items()},
            created_at=timezone.now(),
            results_csv=settings.BATCH_JOB_OUTPUT_FILE,
        )
        result = bulk.score_and_write(data, scorer, context)
        result.timings["read"] = round(read_seconds, 4)
        if result.results_csv is not None:
            # Before the commit: a chunk marked done always has its part of the results file.
            store_file(result_part_name(job.pk, chunk.index), io.BytesIO(result.results_csv))
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
        scored=F("scored") + scored,
        failed=F("failed") + failed,
        risk_increased=F("risk_increased") + risk_increased,
        chunks_done=F("chunks_done") + 1,
        updated_at=timezone.now(),
    )
    # Read after the UPDATE took the job row's lock: a chunk committing at the same moment is
    # either counted here or sees this one, so exactly one of them sends the finish.
    done, count = BatchJob.objects.filter(pk=job_id).values_list("chunks_done", "chunk_count").get()
    if done >= count:
        transaction.on_commit(lambda: send_finish(job_id))


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
