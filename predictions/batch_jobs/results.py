"""A job's results: the predictions it wrote, as rows and as the one CSV file joined from the chunks' parts."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

from django.core.files import File
from django.core.files.storage import default_storage
from django.db.models import Case, CharField, F, QuerySet, Value, When
from django.db.models.functions import Cast, NullIf

from churn_infra.csv_cells import SafeCsvWriter
from churn_ml.stored_factors import expand_factors
from predictions.models import BatchChunkStatus, BatchJob, Prediction

RESULT_COLUMNS = (
    "customer_id",
    "churn_probability",
    "risk_level",
    "previous_risk_level",
    "risk_increased",
    "model_version",
    "top_factors",
    "prediction_id",
)


def batch_job_results(job: BatchJob) -> QuerySet:
    """The job's predictions as result rows (RESULT_COLUMNS), in customer_id order."""
    return (
        Prediction.objects.of_job(job)
        .order_by("customer_id")
        .annotate(
            previous=NullIf("previous_risk_level", Value("")),
            increased=Case(
                When(risk_increased=True, then=Value("true")), default=Value("false"), output_field=CharField()
            ),
            version=F("model_version__version"),
            factors=Cast("top_factors", output_field=CharField()),
        )
        .values_list(
            "customer_id",
            "churn_probability",
            "risk_level",
            "previous",
            "increased",
            "version",
            "factors",
            "prediction_id",
        )
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


def result_part_name(job_id: int, index: int) -> str:
    return f"batch_jobs/results/job-{job_id}/part-{index:05d}.csv"


def store_file(name: str, content: Any) -> None:
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


def write_results_file(job: BatchJob) -> None:
    """The results CSV in storage: the chunks' parts joined in chunk order, or (parts missing) a COPY."""
    done = list(job.chunks.filter(status=BatchChunkStatus.DONE, scored__gt=0).values_list("index", flat=True))
    parts = [result_part_name(job.pk, i) for i in done]
    header = (",".join(RESULT_COLUMNS) + "\n").encode()
    name = f"batch_jobs/results/job-{job.pk}.csv"
    if all(default_storage.exists(p) for p in parts):
        store_file(name, io.BufferedReader(_Concatenated(header, parts), buffer_size=1 << 20))
    else:
        # Written by Python, not COPY TO, so that every cell passes the one formula guard.
        with tempfile.TemporaryFile("w+b") as tmp:
            for piece in results_csv_rows(job):
                tmp.write(piece.encode())
            tmp.seek(0)
            store_file(name, tmp)
    job.output_file.name = name
    for part in parts:
        if default_storage.exists(part):
            default_storage.delete(part)
    # Not a local file system, or the directory is gone already: nothing to tidy.
    with contextlib.suppress(NotImplementedError, OSError):
        os.rmdir(default_storage.path(result_part_name(job.pk, 0)).rsplit(os.sep, 1)[0])
