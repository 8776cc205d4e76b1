"""Creating a job: its scope checked (filters, ids, an uploaded file sniffed for its layout), stored, started."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import QuerySet

from accounts.services import SYSTEM, Actor, audit_record
from churn_ml.deferred import deferred
from churn_ml.schema import CUSTOMER_ID_PATTERN
from customers.ingestion.readers import open_file_reader
from customers.ingestion.sniff import SAMPLE_BYTES, FileRejected, sniff
from customers.models import Customer
from modelregistry.loader import active_model
from predictions.batch_jobs.common import BatchJobInputError
from predictions.batch_jobs.dispatch import send_start
from predictions.models import BatchJob, BatchJobOrigin, BatchJobScope

# pandas loads on first use (churn_ml.deferred): a web worker that scores single records never needs it.
pd = deferred("pandas")

_ID_HEADERS = ("customer_id", "customerID")


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
    bad = [
        i
        for i, cid in enumerate(customer_ids)
        if not isinstance(cid, str) or CUSTOMER_ID_PATTERN.fullmatch(cid.strip()) is None
    ]
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
            raise BatchJobInputError(
                {
                    "file": [
                        f"The file is {upload.size} bytes; at most {settings.BATCH_JOB_MAX_UPLOAD_BYTES} are accepted."
                    ]
                }
            )
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
    audit_record(
        actor=actor,
        action="batch_job.create",
        obj=job,
        details={
            "scope": scope,
            "origin": origin,
            "model_version": model.version,
            "filters": clean_filters,
            "customer_ids": len(ids),
            "file": job.input_name,
        },
    )
    job_id = job.pk
    transaction.on_commit(lambda: send_start(job_id))
    return job
