"""Operations on ingestion runs and data sources. The API, the admin, the tasks and the commands call these.

Over 500 lines on purpose (about 500): every operation on ingestion runs and on the data sources
that start them, one service each.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import traceback
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import numpy as np
from django.conf import settings
from django.core.files import File
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Min
from django.db.models.functions import Mod
from django.utils import timezone

from accounts.services import SYSTEM, Actor, audit_record
from churn_infra.heartbeat import Heartbeat
from churn_infra.metrics import INGESTION_RUNS
from churn_infra.schedules import parse_cron, periodic_task_write
from customers.ingestion import anomalies
from customers.ingestion.mapping import MappingError
from customers.ingestion.pipeline import ClaimLost, Pipeline, TooManyRejected, run_outcome
from customers.ingestion.readers import open_file_reader
from customers.ingestion.readers.chunks import Reader
from customers.ingestion.secrets import SecretUnreadable, encrypt_secret
from customers.ingestion.sniff import SAMPLE_BYTES, FileRejected, sniff
from customers.ingestion.sources import SourceError, open_source_reader
from customers.ingestion.writers import writer_for_connection
from customers.models import (
    FINISHED_STATUSES,
    Customer,
    DataSource,
    IngestionRun,
    RunStatus,
    SourceKind,
)

logger = logging.getLogger(__name__)

# Database hiccups worth a retry of the whole task: the run resumes after its last committed chunk.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError)
ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)
REUSABLE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.PARTIALLY_SUCCEEDED)
SCHEDULE_TASK = "customers.tasks.data_source_run"


class RunNotRetryable(Exception):
    """The run cannot be started again (it finished, or a worker is on it)."""


# --- files ----------------------------------------------------------------------------------


def file_digest(stream: IO[bytes]) -> tuple[str, int]:
    """(sha256 hex, size) of a stream read to its end."""
    digest = hashlib.sha256()
    size = 0
    for block in iter(lambda: stream.read(1 << 20), b""):
        digest.update(block)
        size += len(block)
    return digest.hexdigest(), size


def ingestion_run_find_same_file(*, sha256: str, department_id: int | None) -> IngestionRun | None:
    """The department's earlier run of a file with this content that did not fail, if any."""
    return (
        IngestionRun.objects.filter(
            source_kind=SourceKind.FILE,
            file_sha256=sha256,
            department_id=department_id,
            status__in=REUSABLE_STATUSES,
        )
        .order_by("created_at")
        .first()
    )


def ingestion_upload(*, upload: File, actor: Actor, force: bool = False) -> tuple[IngestionRun, bool]:
    """Store an uploaded file and queue its run; (run, True), or (the earlier run, False) for a known file.

    Raises FileRejected for a file that cannot be CSV or JSON at all (empty, binary).
    """
    upload.seek(0)
    sniff(upload.read(SAMPLE_BYTES))
    upload.seek(0)
    sha256, size = file_digest(upload)  # type: ignore[arg-type]
    upload.seek(0)
    if not force:
        earlier = ingestion_run_find_same_file(sha256=sha256, department_id=actor.department_id)
        if earlier is not None:
            return earlier, False
    name = Path(upload.name or "upload").name[:200] or "upload"
    run = IngestionRun(
        source_kind=SourceKind.FILE,
        source_name="upload",
        department_id=actor.department_id,
        started_by=actor.label[:200],
        started_by_user=actor.user if actor.user is not None and actor.user.pk else None,
        started_by_key_id=actor.api_key_id,
        file_name=name,
        file_sha256=sha256,
        file_size=size,
        forced=force,
    )
    run.file.save(name, upload, save=False)
    with transaction.atomic():
        run.save()
        audit_record(
            actor=actor,
            action="ingestion.upload",
            obj=run,
            department_id=run.department_id,
            details={"file_name": name, "sha256": sha256, "size": size, "forced": force},
        )
        ingestion_run_enqueue(run=run)
    return run, True


def ingestion_import_path(
    *, path: Path, source_name: str, force: bool = False, actor: Actor = SYSTEM
) -> tuple[IngestionRun, bool]:
    """A run for a local file (the import command), processed in this process; or the earlier run of it."""
    with path.open("rb") as stream:
        sha256, size = file_digest(stream)
    if not force:
        earlier = ingestion_run_find_same_file(sha256=sha256, department_id=actor.department_id)
        if earlier is not None:
            return earlier, False
    # The file's own time is when its labels were observed: importing it twice records them once.
    observed_at = datetime.fromtimestamp(int(path.stat().st_mtime), tz=UTC)
    with transaction.atomic():
        run = IngestionRun.objects.create(
            source_kind=SourceKind.FILE,
            source_name=source_name[:100],
            department_id=actor.department_id,
            started_by=actor.label[:200],
            file_path=str(path.resolve()),
            file_name=path.name[:255],
            file_sha256=sha256,
            file_size=size,
            forced=force,
            details={"observed_at": observed_at.isoformat()},
        )
        audit_record(
            actor=actor,
            action="ingestion.import",
            obj=run,
            details={"path": str(path), "sha256": sha256, "size": size, "forced": force},
        )
    return ingestion_run_execute(run_id=run.pk) or run, True


# --- running --------------------------------------------------------------------------------


def ingestion_run_enqueue(*, run: IngestionRun) -> None:
    """Hand the run to a worker once the transaction that created it has committed."""
    from customers.tasks import ingestion_run_process

    run_id = str(run.pk)
    transaction.on_commit(lambda: ingestion_run_process.delay(run_id))


def _claim(run_id: Any, token: str) -> IngestionRun | None:
    """Take the run for this process, unless it finished or another live worker holds it."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.INGESTION_STALE_SECONDS)
    with transaction.atomic():
        run = IngestionRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status in FINISHED_STATUSES:
            return None
        if run.status == RunStatus.RUNNING and run.heartbeat_at is not None and run.heartbeat_at > stale:
            return None
        run.status = RunStatus.RUNNING
        run.worker = token
        run.heartbeat_at = now
        run.attempts += 1
        run.started_at = run.started_at or now
        run.error = ""
        run.save(update_fields=["status", "worker", "heartbeat_at", "attempts", "started_at", "error", "updated_at"])
    return run


def ingestion_run_execute(*, run_id: Any) -> IngestionRun | None:
    """Process a queued (or interrupted) run to its end. Safe to call twice: a held run is left alone.

    Transient database errors are re-raised for the task to retry; the run then resumes after its
    last committed chunk. Anything else ends the run as failed, with the reason.
    """
    token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    run = _claim(run_id, token)
    if run is None:
        return IngestionRun.objects.filter(pk=run_id).first()
    # Alive whatever one chunk or one source read takes: a run silent for INGESTION_STALE_SECONDS
    # is taken over (its worker died).
    with Heartbeat(lambda: _beat(run.pk, token), settings.INGESTION_HEARTBEAT_SECONDS, name=f"ingestion-{run.pk}"):
        return _execute(run, token)


def _beat(run_id: Any, token: str) -> None:
    IngestionRun.objects.filter(pk=run_id, worker=token, status=RunStatus.RUNNING).update(heartbeat_at=timezone.now())


def _execute(run: IngestionRun, token: str) -> IngestionRun | None:
    stream: IO[bytes] | None = None
    try:
        source = run.data_source
        if run.source_kind == SourceKind.FILE:
            stream = run.file.open("rb") if run.file else Path(run.file_path).open("rb")  # noqa: SIM115 - closed below
            reader: Reader = open_file_reader(stream, size=run.file_size, chunk_rows=settings.INGESTION_CHUNK_ROWS)
        elif source is None:
            raise SourceError("The run's data source has been deleted.")
        else:
            reader = open_source_reader(source, chunk_rows=settings.INGESTION_CHUNK_ROWS)
        details = {**run.details, **reader.details}
        if run.source_kind == SourceKind.FILE:
            details.setdefault("observed_at", _first_seen(run).isoformat())
        IngestionRun.objects.filter(pk=run.pk, worker=token).update(details=details)
        run.details = details
        pipeline = Pipeline(
            run=run,
            token=token,
            writer=writer_for_connection(),
            reference=None if run.checkpoint.get("reference") else load_reference(),
            rescore=bool(source is not None and source.rescore_on_change),
            observed_at=datetime.fromisoformat(details["observed_at"]) if "observed_at" in details else run.started_at,
            outcome_source=f"{run.source_name}:{run.file_sha256[:16]}" if run.file_sha256 else run.source_name,
            data_source_id=source.pk if source is not None and source.kind != SourceKind.HTTP else None,
        )
        fatal, failed = "", False
        try:
            pipeline.run_chunks(reader.chunks())
        except SourceError as exc:
            fatal = str(exc)
        except TooManyRejected as exc:
            fatal, failed = str(exc), True
        return _finish(run, token, pipeline, reader, fatal=fatal or reader.fatal, failed=failed)
    except (FileRejected, SourceError, SecretUnreadable, MappingError) as exc:
        return _fail(run, token, str(exc))
    except ClaimLost:
        logger.warning("Ingestion run %s was taken over by another worker", run.pk)
        return None
    except TRANSIENT_ERRORS:
        IngestionRun.objects.filter(pk=run.pk, worker=token).update(heartbeat_at=None)
        raise
    except Exception as exc:
        logger.exception("Ingestion run %s failed", run.pk)
        return _fail(run, token, f"{type(exc).__name__}: {exc}", trace=traceback.format_exc())
    finally:
        if stream is not None:
            stream.close()


def _first_seen(run: IngestionRun) -> datetime:
    """When this file content first arrived in the department: the time its labels were observed."""
    first = IngestionRun.objects.filter(
        source_kind=SourceKind.FILE, file_sha256=run.file_sha256, department_id=run.department_id
    ).aggregate(first=Min("created_at"))["first"]
    return first or run.created_at


def _finish(
    run: IngestionRun, token: str, pipeline: Pipeline, reader: Reader, *, fatal: str, failed: bool = False
) -> IngestionRun:
    # A source with no new rows succeeded; a file with no rows did not.
    empty = "The file has no data rows (at most a header)." if run.source_kind == SourceKind.FILE else ""
    status, error = run_outcome(pipeline.counts, fatal=fatal, empty=empty)
    if failed:
        status = RunStatus.FAILED
    details = {**pipeline.details, **reader.details}  # the reader's figures (pages) as they ended
    notes = reader.notes()
    if notes:
        details["notes"] = notes
    now = timezone.now()
    with transaction.atomic():
        IngestionRun.objects.filter(pk=run.pk, worker=token).update(
            status=status,
            error=error,
            details=details,
            **({"progress": 1.0} if status != RunStatus.FAILED else {}),
            finished_at=now,
            heartbeat_at=None,
            worker="",
            updated_at=now,
        )
        final_cursor = getattr(reader, "final_cursor", None)
        if final_cursor is not None and run.data_source_id and not fatal:
            DataSource.objects.filter(pk=run.data_source_id).update(cursor_value=final_cursor, updated_at=now)
        run.refresh_from_db()
        audit_record(
            actor=SYSTEM,
            action="ingestion.finish",
            obj=run,
            department_id=run.department_id,
            details={"status": status, "counts": run.counts, "error": error[:500]},
        )
        transaction.on_commit(lambda: INGESTION_RUNS.labels(source_kind=run.source_kind, status=status).inc())
    return run


def _fail(run: IngestionRun, token: str, message: str, *, trace: str = "") -> IngestionRun:
    now = timezone.now()
    details = dict(run.details)
    if trace:
        details["traceback"] = trace[-4000:]
    with transaction.atomic():
        IngestionRun.objects.filter(pk=run.pk, worker=token).update(
            status=RunStatus.FAILED,
            error=message[:10_000],
            details=details,
            finished_at=now,
            heartbeat_at=None,
            worker="",
            updated_at=now,
        )
        run.refresh_from_db()
        audit_record(
            actor=SYSTEM,
            action="ingestion.finish",
            obj=run,
            department_id=run.department_id,
            details={"status": RunStatus.FAILED, "counts": run.counts, "error": message[:500]},
        )
        transaction.on_commit(lambda: INGESTION_RUNS.labels(source_kind=run.source_kind, status=RunStatus.FAILED).inc())
    return run


def ingestion_run_mark_failed(*, run_id: Any, message: str) -> None:
    """Record a run as failed when its task gave up (retries exhausted, time limit)."""
    now = timezone.now()
    IngestionRun.objects.filter(pk=run_id).exclude(status__in=FINISHED_STATUSES).update(
        status=RunStatus.FAILED, error=message[:10_000], finished_at=now, heartbeat_at=None, worker="", updated_at=now
    )


@transaction.atomic
def ingestion_run_retry(*, run_id: Any, actor: Actor) -> IngestionRun:
    """Queue a failed or stalled run again; it resumes after its last committed chunk."""
    run = IngestionRun.objects.select_for_update().get(pk=run_id)
    stale = timezone.now() - timedelta(seconds=settings.INGESTION_STALE_SECONDS)
    stalled = run.status == RunStatus.RUNNING and (run.heartbeat_at is None or run.heartbeat_at <= stale)
    if run.status != RunStatus.FAILED and not stalled:
        raise RunNotRetryable(
            f"The run is {run.status}; only failed or stalled runs (no heartbeat for "
            f"{settings.INGESTION_STALE_SECONDS} s) can be retried."
        )
    run.status = RunStatus.QUEUED
    run.error = ""
    run.finished_at = None
    run.heartbeat_at = None
    run.worker = ""
    run.save(update_fields=["status", "error", "finished_at", "heartbeat_at", "worker", "updated_at"])
    audit_record(actor=actor, action="ingestion.retry", obj=run, department_id=run.department_id)
    ingestion_run_enqueue(run=run)
    return run


def ingestion_runs_resume_stale() -> list[str]:
    """Queue again the runs whose worker died (no heartbeat) or whose message was lost (queued too long)."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.INGESTION_STALE_SECONDS)
    running = IngestionRun.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lte=stale)
    queued = IngestionRun.objects.filter(status=RunStatus.QUEUED, updated_at__lte=stale)
    released = IngestionRun.objects.filter(status=RunStatus.RUNNING, heartbeat_at__isnull=True, updated_at__lte=stale)
    ids = [str(pk) for pk in (running | queued | released).values_list("pk", flat=True)]
    from customers.tasks import ingestion_run_process

    for run_id in ids:
        ingestion_run_process.delay(run_id)
    return ids


def load_reference() -> anomalies.Reference | None:
    """Robust statistics of up to 50,000 stored customers, sampled evenly by primary key."""
    total = Customer.objects.count()
    if total < anomalies.MIN_REFERENCE_ROWS:
        return None
    step = max(total // anomalies.REFERENCE_SAMPLE_ROWS, 1)
    queryset = Customer.objects.all()
    if step > 1:
        queryset = queryset.annotate(sample_bucket=Mod("id", step)).filter(sample_bucket=0)
    names = list(anomalies.FIELDS)
    rows = list(queryset.values_list(*names)[: anomalies.REFERENCE_SAMPLE_ROWS])
    if not rows:
        return None
    table = np.array(rows, dtype=object).T
    columns = {
        name: np.array([np.nan if v is None else v for v in table[k]], dtype=np.float64) for k, name in enumerate(names)
    }
    return anomalies.reference_from(columns, origin="stored customers")


# --- data sources ---------------------------------------------------------------------------


@transaction.atomic
def data_source_save(*, source: DataSource, actor: Actor, password: str | None = None) -> DataSource:
    """Create or change a data source (password encrypted), keeping its beat schedule in step."""
    if password is not None:
        source.secret_encrypted = encrypt_secret(password)
    source.full_clean()
    created = source.pk is None
    if created and source.created_by_id is None and actor.user is not None and actor.user.pk:
        source.created_by = actor.user
    source.save()
    data_source_sync_schedule(source=source)
    audit_record(
        actor=actor,
        action="data_source.create" if created else "data_source.update",
        obj=source,
        department_id=source.department_id,
        details={"name": source.name, "kind": source.kind, "password_changed": password is not None},
    )
    return source


@transaction.atomic
def data_source_delete(*, source: DataSource, actor: Actor) -> None:
    from django_celery_beat.models import PeriodicTask

    PeriodicTask.objects.filter(name=_schedule_name(source)).delete()
    audit_record(
        actor=actor,
        action="data_source.delete",
        obj=source,
        department_id=source.department_id,
        details={"name": source.name, "kind": source.kind},
    )
    source.delete()


def _schedule_name(source: DataSource) -> str:
    return f"data-source:{source.pk}"


def data_source_sync_schedule(*, source: DataSource) -> None:
    """One django-celery-beat PeriodicTask per scheduled source, enabled while the source is."""
    from django_celery_beat.models import PeriodicTask

    name = _schedule_name(source)
    cron = parse_cron(source.schedule) if source.kind != SourceKind.STREAM else None
    if cron is None:
        PeriodicTask.objects.filter(name=name).delete()
        return
    periodic_task_write(
        name=name,
        task=SCHEDULE_TASK,
        cron=cron,
        args=[source.pk],
        enabled=source.enabled,
        description=f"Pull {source.name} ({source.get_kind_display()})",
    )


def data_source_start_run(*, source_id: int, actor: Actor, enqueue: bool = True) -> tuple[IngestionRun, bool]:
    """Queue a run of the source: (run, True); or (its run in progress, False)."""
    stale = timezone.now() - timedelta(seconds=settings.INGESTION_STALE_SECONDS)
    with transaction.atomic():
        # Locked so two schedules or clicks cannot start the same source twice.
        source = DataSource.objects.select_for_update().get(pk=source_id)
        if source.kind == SourceKind.STREAM:
            raise SourceError("A Redis stream is consumed by `manage.py consume_events`, not run once.")
        active = source.runs.filter(status__in=ACTIVE_STATUSES).order_by("-created_at").first()
        if active is not None and (active.heartbeat_at is None or active.heartbeat_at > stale):
            return active, False
        run = IngestionRun.objects.create(
            source_kind=source.kind,
            source_name=source.name,
            data_source=source,
            department_id=source.department_id,
            started_by=actor.label[:200],
            started_by_user=actor.user if actor.user is not None and actor.user.pk else None,
            started_by_key_id=actor.api_key_id,
        )
        audit_record(
            actor=actor,
            action="data_source.run",
            obj=run,
            department_id=source.department_id,
            details={"source": source.name},
        )
        if enqueue:
            ingestion_run_enqueue(run=run)
    return run, True


def data_source_run_now(*, source_id: int) -> IngestionRun | None:
    """Run a source in this process (its schedule's task, and `manage.py run_source`)."""
    source = DataSource.objects.filter(pk=source_id).first()
    if source is None:
        return None
    run, created = data_source_start_run(source_id=source_id, actor=SYSTEM, enqueue=False)
    if not created:
        return run
    return ingestion_run_execute(run_id=run.pk)
