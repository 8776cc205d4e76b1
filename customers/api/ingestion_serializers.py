from __future__ import annotations

from typing import Any

from django.core.validators import URLValidator
from rest_framework import serializers

from customers.ingestion.sources import configuration_errors
from customers.models import DataSource, IngestionRun, QuarantinedRow


class CountsSerializer(serializers.Serializer):
    read = serializers.IntegerField(source="read_count")
    created = serializers.IntegerField(source="created_count")
    updated = serializers.IntegerField(source="updated_count")
    unchanged = serializers.IntegerField(source="unchanged_count")
    rejected = serializers.IntegerField(source="rejected_count")
    rejected_not_kept = serializers.SerializerMethodField(
        help_text="Rejected rows counted but not kept (beyond INGESTION_QUARANTINE_MAX_ROWS per run)."
    )

    def get_rejected_not_kept(self, run: IngestionRun) -> int:
        return int((run.quality or {}).get("rejected_not_kept", 0))


class IngestionRunSerializer(serializers.ModelSerializer):
    """A run: where the rows came from, what happened to them, and the data-quality report."""

    source = serializers.CharField(source="source_name")
    counts = CountsSerializer(source="*")
    data_source = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    rejected_url = serializers.SerializerMethodField()

    class Meta:
        model = IngestionRun
        fields = (
            "id",
            "status",
            "source",
            "source_kind",
            "data_source",
            "file_name",
            "file_sha256",
            "file_size",
            "forced",
            "counts",
            "quality",
            "progress",
            "details",
            "error",
            "started_by",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
            "rejected_url",
        )
        read_only_fields = fields

    def get_rejected_url(self, obj: IngestionRun) -> str:
        request = self.context.get("request")
        path = f"/api/v1/ingestions/{obj.pk}/rejected/"
        return request.build_absolute_uri(path) if request is not None else path


class IngestionUploadSerializer(serializers.Serializer):
    """Documents the multipart upload; the view checks the size before anything is read."""

    file = serializers.FileField(help_text="CSV (any of , ; tab |), JSON array or JSON Lines; UTF-8 or Latin-1.")
    force = serializers.BooleanField(required=False, default=False, help_text="Process a file already ingested.")


class QuarantinedRowSerializer(serializers.ModelSerializer):
    class Meta:
        model = QuarantinedRow
        fields = ("line", "customer_id", "reason", "raw", "errors")
        read_only_fields = fields


def _url(value: str) -> None:
    # A plain function, not the URLValidator instance URLField carries: drf-spectacular turns that
    # instance into format "uri", which "" (every non-HTTP source's value) does not satisfy.
    URLValidator()(value)


class OptionalUrlField(serializers.CharField):
    """A URL that may be empty (sources other than HTTP have none): not format "uri" in the schema."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validators.append(_url)


class DataSourceSerializer(serializers.ModelSerializer):
    """A source's settings. The password (or HTTP header value) is write-only and stored encrypted."""

    password = serializers.CharField(
        write_only=True, required=False, allow_blank=True, trim_whitespace=False, style={"input_type": "password"}
    )
    has_password = serializers.SerializerMethodField()
    last_run = serializers.SerializerMethodField()
    url = OptionalUrlField(
        max_length=2000, required=False, allow_blank=True, help_text="HTTP sources: the first page's address."
    )

    class Meta:
        model = DataSource
        fields = (
            "id",
            "name",
            "kind",
            "department",
            "enabled",
            "description",
            "host",
            "port",
            "database",
            "username",
            "password",
            "has_password",
            "url",
            "auth_header",
            "query",
            "collection",
            "records_path",
            "options",
            "column_mapping",
            "cursor_field",
            "cursor_value",
            "page_size",
            "timeout_seconds",
            "max_retries",
            "schedule",
            "rescore_on_change",
            "last_run",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("id", "department", "has_password", "last_run", "created_at", "updated_at")

    def get_has_password(self, obj: DataSource) -> bool:
        return bool(obj.secret_encrypted)

    def get_last_run(self, obj: DataSource) -> dict[str, Any] | None:
        run = obj.runs.order_by("-created_at").first()
        return {"id": str(run.pk), "status": run.status, "created_at": run.created_at} if run is not None else None

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        values = {k: v for k, v in attrs.items() if k != "password"}
        candidate = DataSource(**{**self._current(), **values})
        errors = configuration_errors(candidate)
        if errors:
            raise serializers.ValidationError(errors)
        return attrs

    def _current(self) -> dict[str, Any]:
        if self.instance is None:
            return {}
        return {f.name: getattr(self.instance, f.name) for f in DataSource._meta.concrete_fields if f.name != "id"}
