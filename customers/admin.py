"""Operator admin for customers, outcomes and ingestion. Changes go through the services, which audit them.

Over 500 lines on purpose: the admin of one app's models (customers, outcomes, ingestion runs and
sources), each with its actions; what the actions do lives in the services.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from accounts.context import actor_for_request
from churn_infra.form_fields import MappingField
from churn_ml.record import check_record
from churn_ml.schema import FIELD_ORDER
from customers.ingestion.selectors import format_errors, quarantine_csv
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
from customers.models import (
    Customer,
    CustomerEvent,
    DataSource,
    IngestionRun,
    Outcome,
    QuarantinedRow,
    SourceKind,
)
from customers.services import customer_upsert, outcome_record

# Events one click processes in the request; a long-running consume_events does the rest.
STREAM_DRAIN_EVENTS = 10_000



def _department_scoped(request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
    actor = actor_for_request(request)
    if actor.is_superuser:
        return queryset
    return queryset.filter(department_id=actor.department_id) if actor.department_id else queryset.none()


# --- customers and outcomes -----------------------------------------------------------------


class HasWarningsFilter(admin.SimpleListFilter):
    title = "quality warnings"
    parameter_name = "warnings"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "With warnings or anomalies"), ("no", "None")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Customer]) -> QuerySet[Customer]:
        if self.value() == "yes":
            return queryset.exclude(quality_warnings=[])
        if self.value() == "no":
            return queryset.filter(quality_warnings=[])
        return queryset


class CustomerForm(forms.ModelForm):
    """Validates the edited record with the contract's validator, like every other entry point."""

    class Meta:
        model = Customer
        fields = ("customer_id", *FIELD_ORDER)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        record = {name: cleaned.get(name) for name in ("customer_id", *FIELD_ORDER) if name in cleaned}
        if self.instance.pk:
            record["customer_id"] = self.instance.customer_id
        check = check_record(record)
        for name, problems in check.errors.items():
            for problem in problems:
                self.add_error(name if name in self.fields else None, problem)
        self.check = check
        return cleaned


class OutcomeInline(admin.TabularInline):
    model = Outcome
    extra = 0
    fields = ("churned", "observed_at", "source", "recorded_by")
    readonly_fields = fields
    can_delete = False
    ordering = ("-observed_at",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CustomerEventInline(admin.TabularInline):
    model = CustomerEvent
    extra = 0
    fields = ("event_type", "status", "occurred_at", "data", "changed", "created_at")
    readonly_fields = fields
    can_delete = False
    ordering = ("-created_at",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    form = CustomerForm
    list_display = (
        "customer_id",
        "contract_type",
        "internet_service",
        "tenure_months",
        "monthly_charges",
        "quality_completeness",
        "warning_count",
        "source",
        "updated_at",
    )
    list_filter = (
        HasWarningsFilter,
        "contract_type",
        "internet_service",
        "payment_method",
        "senior_citizen",
        "paperless_billing",
        "source",
    )
    search_fields = ("customer_id",)
    readonly_fields = ("quality_completeness", "quality_warnings_list", "source", "created_at", "updated_at")
    inlines = (OutcomeInline, CustomerEventInline)
    date_hierarchy = "updated_at"
    show_full_result_count = False  # a count(*) of millions of customers on every page is not worth it

    def get_readonly_fields(self, request: HttpRequest, obj: Customer | None = None) -> Any:
        return (*self.readonly_fields, "customer_id") if obj is not None else self.readonly_fields

    @admin.display(description="warnings")
    def warning_count(self, obj: Customer) -> int:
        return len(obj.quality_warnings or [])

    @admin.display(description="quality warnings")
    def quality_warnings_list(self, obj: Customer) -> str:
        return format_html_join("", "<div>{}</div>", ((w,) for w in obj.quality_warnings or [])) or "-"

    def save_model(self, request: HttpRequest, obj: Customer, form: CustomerForm, change: bool) -> None:
        saved, _ = customer_upsert(check=form.check, source="admin", actor=actor_for_request(request))
        obj.pk = saved.pk


@admin.register(Outcome)
class OutcomeAdmin(admin.ModelAdmin):
    list_display = ("customer", "churned", "observed_at", "source", "recorded_by", "created_at")
    list_filter = ("churned", "source")
    search_fields = ("customer__customer_id", "source")
    date_hierarchy = "observed_at"
    raw_id_fields = ("customer",)
    readonly_fields = ("recorded_by", "created_at", "updated_at")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # An observation is recorded, not edited: a correction is a new outcome (or the same
        # observation recorded again with the other value), through the one outcome service.
        return False

    def save_model(self, request: HttpRequest, obj: Outcome, form: Any, change: bool) -> None:
        saved, _ = outcome_record(
            customer_id=obj.customer.customer_id,
            churned=obj.churned,
            observed_at=obj.observed_at,
            source=obj.source,
            channel="admin",
            actor=actor_for_request(request),
        )
        obj.pk = saved.pk


# --- ingestion ------------------------------------------------------------------------------


class UploadForm(forms.Form):
    file = forms.FileField(help_text="CSV (, ; tab or |), JSON array or JSON Lines; UTF-8 or Latin-1.")
    force = forms.BooleanField(required=False, help_text="Process the file even if the same file was ingested.")

    def clean_file(self) -> Any:
        from django.conf import settings

        upload = self.cleaned_data["file"]
        if upload.size > settings.INGESTION_MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                f"The file is {upload.size} bytes; the limit is {settings.INGESTION_MAX_UPLOAD_BYTES} bytes."
            )
        return upload


class QuarantinedRowInline(admin.TabularInline):
    model = QuarantinedRow
    extra = 0
    fields = ("line", "customer_id", "reason", "reasons", "raw")
    readonly_fields = fields
    can_delete = False
    max_num = 0
    show_change_link = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[QuarantinedRow]:
        # The first rows; the download has all of them.
        return super().get_queryset(request).order_by("line", "pk")

    @admin.display(description="errors")
    def reasons(self, obj: QuarantinedRow) -> str:
        return format_errors(obj.errors if isinstance(obj.errors, dict) else {})


@admin.register(IngestionRun)
class IngestionRunAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "source_name",
        "source_kind",
        "status",
        "file_name",
        "read_count",
        "created_count",
        "updated_count",
        "unchanged_count",
        "rejected_count",
        "quality_pct",
        "department",
    )
    list_filter = ("status", "source_kind", "department")
    search_fields = ("source_name", "file_name", "file_sha256", "id")
    date_hierarchy = "created_at"
    actions = ("retry_selected",)
    readonly_fields = (
        "id",
        "status",
        "source_kind",
        "source_name",
        "data_source",
        "department",
        "started_by",
        "file_name",
        "file_sha256",
        "file_size",
        "forced",
        "read_count",
        "created_count",
        "updated_count",
        "unchanged_count",
        "rejected_count",
        "progress",
        "quality",
        "details",
        "error",
        "attempts",
        "created_at",
        "started_at",
        "finished_at",
        "rejected_download",
    )
    fields = readonly_fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[IngestionRun]:
        return _department_scoped(request, super().get_queryset(request).select_related("department", "data_source"))

    def get_inlines(self, request: HttpRequest, obj: IngestionRun | None) -> Any:
        return (QuarantinedRowInline,) if obj is not None and obj.rejected_count else ()

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="quality %")
    def quality_pct(self, obj: IngestionRun) -> Any:
        return (obj.quality or {}).get("quality_pct", "-")

    @admin.display(description="rejected rows")
    def rejected_download(self, obj: IngestionRun) -> str:
        if not obj.rejected_count:
            return "-"
        url = reverse("admin:customers_ingestionrun_rejected_csv", args=[obj.pk])
        return format_html('<a href="{}">Download the {} rejected rows as CSV</a>', url, obj.rejected_count)

    def get_urls(self) -> list[Any]:
        own = [
            path(
                "<uuid:run_id>/rejected.csv",
                self.admin_site.admin_view(self.rejected_csv),
                name="customers_ingestionrun_rejected_csv",
            )
        ]
        return own + super().get_urls()

    def rejected_csv(self, request: HttpRequest, run_id: Any) -> StreamingHttpResponse:
        run = get_object_or_404(self.get_queryset(request), pk=run_id)
        response = StreamingHttpResponse(quarantine_csv(run=run), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="rejected-{run.pk}.csv"'
        return response

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        """The add page is a file upload; the run is processed by a worker."""
        if request.method == "POST":
            form = UploadForm(request.POST, request.FILES)
            if form.is_valid():
                try:
                    run, created = ingestion_upload(
                        upload=form.cleaned_data["file"],
                        actor=actor_for_request(request),
                        force=form.cleaned_data["force"],
                    )
                except FileRejected as exc:
                    form.add_error("file", str(exc))
                else:
                    if created:
                        self.message_user(request, f"Uploaded; run {run.pk} is {run.status}.", messages.SUCCESS)
                    else:
                        self.message_user(
                            request,
                            f"This file was already ingested in run {run.pk}; tick 'force' to process it again.",
                            messages.WARNING,
                        )
                    return HttpResponseRedirect(reverse("admin:customers_ingestionrun_change", args=[run.pk]))
        else:
            form = UploadForm()
        context = {
            **self.admin_site.each_context(request),
            "title": "Upload a customer file",
            "opts": self.model._meta,
            "form": form,
            "adminform": None,
            "add": True,
            "change": False,
            "has_view_permission": True,
            "has_add_permission": True,
            "has_change_permission": False,
            "has_delete_permission": False,
            "has_editable_inline_admin_formsets": False,
            "save_as": False,
            "show_save": True,
            "is_popup": False,
            "has_file_field": True,
            **(extra_context or {}),
        }
        from django.template.response import TemplateResponse

        return TemplateResponse(request, "admin/customers/ingestionrun/upload.html", context)

    @admin.action(description="Retry the selected failed or stalled runs")
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[IngestionRun]) -> None:
        retried = 0
        for run_id in queryset.values_list("pk", flat=True):
            try:
                ingestion_run_retry(run_id=run_id, actor=actor_for_request(request))
                retried += 1
            except RunNotRetryable as exc:
                self.message_user(request, f"{run_id}: {exc}", messages.WARNING)
        if retried:
            self.message_user(request, f"Queued {retried} run(s) again.", messages.SUCCESS)


@admin.register(QuarantinedRow)
class QuarantinedRowAdmin(admin.ModelAdmin):
    list_display = ("run", "line", "customer_id", "reason", "reasons")
    list_filter = ("reason",)
    search_fields = ("customer_id", "run__id")
    readonly_fields = ("run", "line", "customer_id", "reason", "raw", "errors", "created_at")
    fields = readonly_fields
    list_select_related = ("run",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[QuarantinedRow]:
        queryset = super().get_queryset(request)
        actor = actor_for_request(request)
        if actor.is_superuser:
            return queryset
        return queryset.filter(run__department_id=actor.department_id) if actor.department_id else queryset.none()

    @admin.display(description="errors")
    def reasons(self, obj: QuarantinedRow) -> str:
        return format_errors(obj.errors if isinstance(obj.errors, dict) else {})

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DataSourceForm(forms.ModelForm):
    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Database password or HTTP header value, stored encrypted. Leave empty to keep the current one.",
    )
    clear_password = forms.BooleanField(required=False, help_text="Remove the stored password.")
    url = forms.URLField(
        required=False, max_length=2000, assume_scheme="https", help_text="HTTP sources: the first page's address."
    )
    column_mapping = MappingField(
        help_text='One line per source column: "source column = contract field" ("= churned" for the label, '
        'nothing after "=" to skip the column). Empty: the columns already carry the contract\'s names.'
    )

    class Meta:
        model = DataSource
        fields = (
            "name",
            "kind",
            "department",
            "enabled",
            "description",
            "host",
            "port",
            "database",
            "username",
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
        )


@admin.register(DataSource)
class DataSourceAdmin(admin.ModelAdmin):
    form = DataSourceForm
    list_display = ("name", "kind", "department", "enabled", "schedule", "rescore_on_change", "last_run")
    list_filter = ("kind", "enabled", "department")
    search_fields = ("name", "host", "url", "collection")
    actions = ("run_now",)
    fieldsets = (
        (None, {"fields": ("name", "kind", "department", "enabled", "description")}),
        (
            "Connection",
            {"fields": ("host", "port", "database", "username", "password", "clear_password", "url", "auth_header")},
        ),
        ("What to read", {"fields": ("query", "collection", "records_path", "options", "column_mapping")}),
        ("Incremental pulls", {"fields": ("cursor_field", "cursor_value")}),
        ("Running", {"fields": ("page_size", "timeout_seconds", "max_retries", "schedule", "rescore_on_change")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[DataSource]:
        return _department_scoped(request, super().get_queryset(request))

    @admin.display(description="last run")
    def last_run(self, obj: DataSource) -> str:
        run = obj.runs.order_by("-created_at").first()
        if run is None:
            return "-"
        url = reverse("admin:customers_ingestionrun_change", args=[run.pk])
        return format_html('<a href="{}">{} ({})</a>', url, run.status, f"{run.created_at:%Y-%m-%d %H:%M}")

    def save_model(self, request: HttpRequest, obj: DataSource, form: DataSourceForm, change: bool) -> None:
        password = form.cleaned_data.get("password") or None
        if form.cleaned_data.get("clear_password"):
            password = ""
        data_source_save(source=obj, actor=actor_for_request(request), password=password)

    def delete_model(self, request: HttpRequest, obj: DataSource) -> None:
        data_source_delete(source=obj, actor=actor_for_request(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[DataSource]) -> None:
        for source in queryset:
            data_source_delete(source=source, actor=actor_for_request(request))

    @admin.action(description="Run the selected sources now (streams: process what is waiting)")
    def run_now(self, request: HttpRequest, queryset: QuerySet[DataSource]) -> None:
        for source in queryset:
            if source.kind == SourceKind.STREAM:
                handled, run = stream_drain(source=source, max_events=STREAM_DRAIN_EVENTS)
                summary = f"run {run.pk} {run.status}" if run is not None else "nothing was waiting"
                self.message_user(request, f"{source.name}: processed {handled} events; {summary}.", messages.SUCCESS)
                continue
            try:
                run, created = data_source_start_run(source_id=source.pk, actor=actor_for_request(request))
            except SourceError as exc:
                self.message_user(request, f"{source.name}: {exc}", messages.ERROR)
                continue
            verb = "queued" if created else "already running as"
            self.message_user(request, f"{source.name}: {verb} run {run.pk}.", messages.SUCCESS)


@admin.register(CustomerEvent)
class CustomerEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "event_type", "customer_key", "status", "changed", "stream", "entry_id")
    list_filter = ("event_type", "status", "changed", "stream")
    search_fields = ("customer_key", "entry_id")
    readonly_fields = (
        "stream",
        "entry_id",
        "event_type",
        "status",
        "customer",
        "customer_key",
        "occurred_at",
        "data",
        "errors",
        "changed",
        "run",
        "created_at",
    )
    fields = readonly_fields
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
