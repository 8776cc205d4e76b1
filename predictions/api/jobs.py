"""Batch scoring jobs over the API: POST predictions/jobs/, GET predictions/jobs/{id}/ and .../results/."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http import FileResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.context import actor_for_request
from churn_infra.api import JsonErrorsMixin, require_declared_length
from predictions.batch_jobs.common import MAX_REJECTED_SAMPLE
from predictions.batch_jobs.create import batch_job_create
from predictions.batch_jobs.results import results_csv_rows
from predictions.models import BatchJob, BatchJobOrigin, BatchJobScope
from predictions.quotas import JobQuotaExceeded, batch_job_slot
from predictions.selectors import batch_job_list

_BODY_FIELDS = {"scope", "customer_ids", "filter"}


class QuotaExceeded(exceptions.APIException):
    """429 with Retry-After (DRF's handler sets it from ``wait``)."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "quota_exceeded"
    default_detail = "The department's batch job quota is reached."

    def __init__(self, detail: str, wait: int) -> None:
        super().__init__(detail)
        self.wait = wait


class BatchJobSerializer(serializers.ModelSerializer):
    """The contract's job object, plus what an operator needs to follow it."""

    model_version = serializers.CharField(source="model_version.version")
    progress = serializers.FloatField()
    counts = serializers.SerializerMethodField()
    chunks = serializers.SerializerMethodField()
    filter = serializers.JSONField(source="filters")
    customer_ids = serializers.SerializerMethodField()
    file = serializers.CharField(source="input_name")
    rejected = serializers.SerializerMethodField()
    workers = serializers.SerializerMethodField()
    results_url = serializers.SerializerMethodField()

    class Meta:
        model = BatchJob
        fields = ("id", "status", "progress", "counts", "model_version", "started_at", "finished_at", "scope",
                  "origin", "filter", "customer_ids", "file", "chunks", "duration_seconds", "requested_by",
                  "created_at", "error", "rejected", "workers", "results_url")
        read_only_fields = fields

    def get_counts(self, job: BatchJob) -> dict[str, int]:
        return {"total": job.total, "scored": job.scored, "failed": job.failed, "risk_increased": job.risk_increased}

    def get_chunks(self, job: BatchJob) -> dict[str, int]:
        return {"total": job.chunk_count, "done": job.chunks_done, "size": job.chunk_size}

    def get_customer_ids(self, job: BatchJob) -> int:
        return len(job.customer_ids)

    def get_rejected(self, job: BatchJob) -> dict[str, Any]:
        """Rows not scored (samples): unknown ids; for a file, repeated and invalid rows with their line."""
        details = job.details or {}
        rows = list(details.get("rejected", []))
        if job.scope == BatchJobScope.FILE:
            for errors in job.chunks.exclude(errors=[]).order_by("index").values_list("errors", flat=True):
                rows.extend(errors)
        return {
            "unknown_customer_ids": details.get("unknown_customer_ids", []),
            "rows": sorted(rows, key=lambda r: r.get("line", 0))[:MAX_REJECTED_SAMPLE],
        }

    def get_workers(self, job: BatchJob) -> dict[str, Any]:
        return (job.details or {}).get("workers", {})

    def get_results_url(self, job: BatchJob) -> str:
        request = self.context.get("request")
        path = f"/api/v1/predictions/jobs/{job.pk}/results/"
        return request.build_absolute_uri(path) if request is not None else path


class BatchJobCreateSerializer(serializers.Serializer):
    """Exactly one scope: ``{"scope": "all"}``, ``{"customer_ids": [...]}``, ``{"filter": {...}}``, or a file."""

    scope = serializers.ChoiceField(choices=BatchJobScope.choices, required=False)
    customer_ids = serializers.ListField(child=serializers.CharField(), required=False)
    filter = serializers.DictField(required=False, help_text="The customer list's filters, e.g. contract_type.")
    file = serializers.FileField(required=False, help_text="multipart: a CSV of records (contract or Telco layout) "
                                                           "or of customer ids alone.")


class CSVRenderer(BaseRenderer):
    """Lets clients ask for text/csv; the CSV itself is streamed by the view, errors stay JSON."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        return json.dumps(data).encode() if not isinstance(data, (bytes, str)) else data  # type: ignore[return-value]


def _scope_of(data: Any, has_file: bool) -> tuple[str, dict[str, Any]]:
    """The scope asked for and its arguments, from a JSON body or a multipart upload."""
    if has_file:
        return BatchJobScope.FILE, {}
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": ["Expected a JSON object."]})
    unknown = sorted(set(data) - _BODY_FIELDS)
    if unknown:
        raise ValidationError({name: ["Unknown field."] for name in unknown})
    given = [key for key in ("customer_ids", "filter") if key in data]
    if len(given) > 1:
        raise ValidationError({"non_field_errors": ["Give customer_ids or filter, not both."]})
    scope = data.get("scope")
    if given:
        implied = BatchJobScope.IDS if given[0] == "customer_ids" else BatchJobScope.FILTER
        if scope not in (None, implied):
            raise ValidationError({"scope": [f"Scope {scope!r} does not go with {given[0]}."]})
        key = "customer_ids" if implied == BatchJobScope.IDS else "filters"
        return implied, {key: data[given[0]]}
    if scope == BatchJobScope.ALL:
        return BatchJobScope.ALL, {}
    if scope in (BatchJobScope.IDS, BatchJobScope.FILTER, BatchJobScope.FILE):
        needs = {"ids": "customer_ids", "filter": "filter", "file": "file (multipart)"}[scope]
        raise ValidationError({needs.split()[0]: [f"Scope {scope!r} needs {needs}."]})
    if scope is not None:
        raise ValidationError({"scope": [f"Unknown scope {scope!r}; use all, ids, filter or file."]})
    raise ValidationError({"scope": ['Give {"scope": "all"}, customer_ids, filter, or upload a file.']})


class BatchJobViewSet(JsonErrorsMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Batch scoring jobs, newest first. POST queues one (202); results/ streams its CSV."""

    serializer_class = BatchJobSerializer
    parser_classes = [JSONParser, MultiPartParser]
    lookup_value_regex = r"\d+"
    required_scopes = {"GET": "customers:read", "POST": "predictions:write"}

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return batch_job_list(actor=actor_for_request(self.request))

    @extend_schema(
        request={"application/json": BatchJobCreateSerializer, "multipart/form-data": BatchJobCreateSerializer},
        responses={202: BatchJobSerializer},
        examples=[OpenApiExample("all", value={"scope": "all"}),
                  OpenApiExample("ids", value={"customer_ids": ["7590-VHVEG", "5575-GNVDE"]}),
                  OpenApiExample(
                      "filter", value={"filter": {"contract_type": "Month-to-month", "max_tenure_months": 6}}
                  )],
    )
    def create(self, request: Request) -> Response:
        if request.content_type.startswith("multipart/"):
            require_declared_length(request, settings.BATCH_JOB_MAX_UPLOAD_BYTES)  # before a byte is read
        actor = actor_for_request(request)
        try:
            with batch_job_slot(actor):
                upload = request.FILES.get("file")
                scope, arguments = _scope_of(request.data if upload is None else {}, upload is not None)
                job = batch_job_create(scope=scope, upload=upload, actor=actor, origin=BatchJobOrigin.API,
                                       **arguments)
        except JobQuotaExceeded as exc:
            raise QuotaExceeded(exc.detail, wait=exc.retry_after) from None
        job = self.get_queryset().get(pk=job.pk)
        location = request.build_absolute_uri(f"/api/v1/predictions/jobs/{job.pk}/")
        return Response(self.get_serializer(job).data, status=status.HTTP_202_ACCEPTED, headers={"Location": location})

    @extend_schema(responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="The results CSV.")})
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, CSVRenderer])
    def results(self, request: Request, pk: str | None = None) -> Any:
        """The job's predictions as CSV: the results file once finished, else what is written so far."""
        job = self.get_object()
        filename = f"batch-job-{job.pk}-results.csv"
        if job.output_file:
            return FileResponse(job.output_file.open("rb"), content_type="text/csv", as_attachment=True,
                                filename=filename)
        response = StreamingHttpResponse(results_csv_rows(job), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response["X-Job-Status"] = job.status
        return response
