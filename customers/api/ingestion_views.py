"""Ingestion runs (file uploads) and data sources."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.context import actor_for_request
from churn_infra.api import JsonErrorsMixin, UploadTooLarge, require_declared_length
from churn_infra.outages import ServiceUnavailable
from customers.api.ingestion_serializers import (
    DataSourceSerializer,
    IngestionRunSerializer,
    IngestionUploadSerializer,
    QuarantinedRowSerializer,
)
from customers.ingestion.selectors import data_source_list, ingestion_run_list, quarantine_csv, quarantined_rows
from customers.ingestion.services import (
    RunNotRetryable,
    data_source_delete,
    data_source_save,
    data_source_start_run,
    ingestion_run_retry,
    ingestion_upload,
)
from customers.ingestion.sniff import FileRejected
from customers.ingestion.sources import SourceError
from customers.ingestion.sources.stream import stream_drain
from customers.models import DataSource, IngestionRun, SourceKind

STREAM_DRAIN_EVENTS = 10_000
class RunConflict(exceptions.APIException):
    """The run is running (its worker is alive), queued or finished: nothing to retry."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "run_not_retryable"
    default_detail = "Only failed or stalled runs can be retried."


class QuarantineCsvRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        return data if isinstance(data, bytes) else str(data).encode()


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


class IngestionRunViewSet(JsonErrorsMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Upload a file to ingest (202 with its run), follow the run, list and download what it refused."""

    serializer_class = IngestionRunSerializer
    required_scopes = {"GET": "customers:read", "POST": "ingestion:write"}
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return ingestion_run_list(actor=actor_for_request(self.request))

    @extend_schema(
        request={"multipart/form-data": IngestionUploadSerializer},
        responses={202: IngestionRunSerializer, 200: IngestionRunSerializer},
    )
    def create(self, request: Request) -> Response:
        """202 and the queued run; 200 and the earlier run when this file was ingested before (force=true redoes it)."""
        limit = settings.INGESTION_MAX_UPLOAD_BYTES
        require_declared_length(request, limit)
        upload = request.FILES.get("file")
        if upload is None:
            raise exceptions.ValidationError({"file": ["Send the file in the multipart field 'file'."]})
        if upload.size > limit:
            raise UploadTooLarge(f"The file is {upload.size} bytes; the limit is {limit} bytes.")
        unknown = sorted(set(request.data) - {"file", "force"})
        if unknown:
            raise exceptions.ValidationError({name: ["Unknown field."] for name in unknown})
        try:
            run, created = ingestion_upload(
                upload=upload, actor=actor_for_request(request), force=_truthy(request.data.get("force", ""))
            )
        except FileRejected as exc:
            raise exceptions.ValidationError({"file": [str(exc)]}) from None
        run.refresh_from_db()
        body = IngestionRunSerializer(run, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK)

    @extend_schema(
        responses=QuarantinedRowSerializer(many=True),
        parameters=[OpenApiParameter("format", str, enum=["json", "csv"], description="csv downloads every row")],
    )
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, QuarantineCsvRenderer])
    def rejected(self, request: Request, pk: str | None = None) -> Any:
        """The rows the run refused, each with its line, raw values and every reason."""
        run = self.get_object()
        if request.accepted_renderer.format == "csv":
            response = StreamingHttpResponse(quarantine_csv(run=run), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="rejected-{run.pk}.csv"'
            return response
        page = self.paginate_queryset(quarantined_rows(run=run))
        return self.get_paginated_response(QuarantinedRowSerializer(page, many=True).data)

    @extend_schema(request=None, responses={
        202: IngestionRunSerializer,
        409: OpenApiResponse(description="The run is running (its worker is alive), queued or finished."),
    })
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        """Queue a failed or stalled run again; it resumes after its last committed chunk."""
        run = self.get_object()
        try:
            run = ingestion_run_retry(run_id=run.pk, actor=actor_for_request(request))
        except RunNotRetryable as exc:
            raise RunConflict(str(exc)) from None
        run.refresh_from_db()
        return Response(IngestionRunSerializer(run, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)


class DataSourceViewSet(viewsets.ModelViewSet):
    """Databases, HTTP APIs and Redis streams that customers are pulled from; POST {id}/run/ pulls one now."""

    serializer_class = DataSourceSerializer
    required_scopes = dict.fromkeys(("GET", "POST", "PUT", "PATCH", "DELETE"), "ingestion:write")

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return data_source_list(actor=actor_for_request(self.request))

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        actor = actor_for_request(self.request)
        data = dict(serializer.validated_data)
        password = data.pop("password", None)
        source = DataSource(**data, department_id=actor.department_id)
        serializer.instance = self._save(source, password)

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        data = dict(serializer.validated_data)
        password = data.pop("password", None)
        source = serializer.instance
        for name, value in data.items():
            setattr(source, name, value)
        serializer.instance = self._save(source, password)

    def perform_destroy(self, instance: DataSource) -> None:
        data_source_delete(source=instance, actor=actor_for_request(self.request))

    def _save(self, source: DataSource, password: str | None) -> DataSource:
        try:
            return data_source_save(source=source, actor=actor_for_request(self.request), password=password)
        except ImproperlyConfigured as exc:
            # No key ring to encrypt the secret with: nothing is stored, and the operator is told why.
            raise ServiceUnavailable(str(exc), retry_after=300) from None
        except DjangoValidationError as exc:
            raise exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages) from None

    @extend_schema(request=None, responses={202: IngestionRunSerializer, 200: IngestionRunSerializer, 204: None})
    @action(detail=True, methods=["post"])
    def run(self, request: Request, pk: str | None = None) -> Response:
        """Pull the source now: 202 and the queued run, or 200 and the run already in progress.

        A stream source processes what is waiting (up to 10,000 events) before answering: 200 and
        its run, or 204 when nothing was waiting.
        """
        source = self.get_object()
        if source.kind == SourceKind.STREAM:
            # A stream has no end: process what is waiting now, here; consume_events does the rest.
            _, drained = stream_drain(source=source, max_events=STREAM_DRAIN_EVENTS)
            if drained is None:
                return Response(status=status.HTTP_204_NO_CONTENT)
            return Response(IngestionRunSerializer(drained, context={"request": request}).data)
        try:
            run, created = data_source_start_run(source_id=source.pk, actor=actor_for_request(request))
        except SourceError as exc:
            raise exceptions.ValidationError({"kind": [str(exc)]}) from None
        run = IngestionRun.objects.get(pk=run.pk)
        return Response(
            IngestionRunSerializer(run, context={"request": request}).data,
            status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK,
        )
