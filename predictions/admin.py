from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from accounts.context import actor_for_request
from churn_infra.form_fields import LinesListField
from modelregistry.loader import ModelUnavailable
from predictions.batch_jobs.common import BatchJobInputError, BatchJobStateError
from predictions.batch_jobs.create import batch_job_create
from predictions.batch_jobs.operator_actions import batch_job_cancel, batch_job_resume
from predictions.models import (
    BatchChunk,
    BatchJob,
    BatchJobOrigin,
    BatchJobScope,
    BatchJobStatus,
    Prediction,
    RiskTierAction,
)
from predictions.operations import status_report
from predictions.selectors import batch_job_list
from predictions.tier_actions import TIER_EDITABLE_FIELDS, TierActionError, tier_action_check, tier_action_update


class RiskTierActionForm(forms.ModelForm):
    """The tier service's rules (tier_action_check), shown on the form's fields."""

    recommendations = LinesListField(
        max_items=10, max_length_each=500, help_text="One recommendation a line, in the order staff should read them."
    )

    class Meta:
        model = RiskTierAction
        fields = TIER_EDITABLE_FIELDS

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.instance.pk and not self.errors:
            try:
                tier_action_check(risk_level=self.instance.risk_level, changes=_tier_changes(self))
            except TierActionError as exc:
                for name, messages_ in exc.errors.items():
                    self.add_error(name if name in self.fields else None, messages_)
        return data


def _tier_changes(form: forms.ModelForm) -> dict[str, Any]:
    return {name: form.cleaned_data.get(name) for name in form.changed_data if name in TIER_EDITABLE_FIELDS}


@admin.register(RiskTierAction)
class RiskTierActionAdmin(admin.ModelAdmin):
    """Operators edit the recommendation texts and the offer per risk level; no deploy needed.

    Saving goes through tier_action_update, the one writer of tiers, which writes the audit entry.
    """

    form = RiskTierActionForm
    list_display = ("risk_level", "recommendations", "offer_discount_percent", "offer_months", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: RiskTierAction, form: Any, change: bool) -> None:
        tier_action_update(risk_level=obj.risk_level, changes=_tier_changes(form), actor=actor_for_request(request))


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "customer_id",
        "churn_probability",
        "risk_level",
        "model_version",
        "source",
        "latency_ms",
    )
    list_filter = ("risk_level", "model_version", "source", ("created_at", admin.DateFieldListFilter))
    search_fields = ("customer_id", "=prediction_id", "request_id")
    date_hierarchy = "created_at"
    list_select_related = ("model_version",)
    show_full_result_count = False
    readonly_fields = [f.name for f in Prediction._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
# --- batch scoring jobs -----------------------------------------------------------------------



class BatchChunkInline(admin.TabularInline):
    model = BatchChunk
    extra = 0
    can_delete = False
    fields = ("index", "status", "size", "scored", "failed", "risk_increased", "attempts", "worker",
              "duration_seconds", "timings", "error")
    readonly_fields = fields
    ordering = ("index",)
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(BatchJob)
class BatchJobAdmin(admin.ModelAdmin):
    """Batch scoring jobs: read-only rows; starting, cancelling and resuming are POST actions on services."""

    list_display = ("id", "created_at", "scope", "origin", "status", "progress_percent", "scored", "failed",
                    "risk_increased", "model_version", "duration_seconds", "requested_by")
    list_filter = ("status", "scope", "origin")
    list_select_related = ("model_version",)
    date_hierarchy = "created_at"
    actions = ("cancel_selected", "resume_selected", "rerun_selected")
    inlines = (BatchChunkInline,)
    change_list_template = "admin/predictions/batchjob/change_list.html"
    readonly_fields = ("scope", "status", "origin", "progress_percent", "model_version", "filters", "customer_count",
                       "input_name", "chunk_size", "chunk_count", "chunks_done", "total", "scored", "failed",
                       "risk_increased", "results", "requested_by", "started_at", "finished_at", "duration_seconds",
                       "details", "error", "created_at", "updated_at")
    fields = readonly_fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[BatchJob]:
        # An operator of a department sees its jobs; superusers see all (issue 11, finding 1).
        return batch_job_list(actor=actor_for_request(request))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs start from the "Start full scoring" button or the API

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="progress")
    def progress_percent(self, obj: BatchJob) -> str:
        return f"{obj.progress:.0%}"

    @admin.display(description="customer ids")
    def customer_count(self, obj: BatchJob) -> int:
        return len(obj.customer_ids)

    @admin.display(description="results")
    def results(self, obj: BatchJob) -> str:
        if not obj.scored:
            return "-"
        url = reverse("batch-job-results", kwargs={"pk": obj.pk})
        label = "results file (CSV)" if obj.output_file else "results so far (CSV)"
        return format_html('<a href="{}">{}</a>', url, label)

    def get_urls(self):  # type: ignore[no-untyped-def]
        own = [
            path("start-full/", self.admin_site.admin_view(self.start_full_view), name="predictions_batchjob_start"),
            path("worker-status/", self.admin_site.admin_view(self.worker_status_view),
                 name="predictions_worker_status"),
        ]
        return own + super().get_urls()

    def start_full_view(self, request: HttpRequest) -> HttpResponse:
        """GET: what a full scoring would do; POST: start it (the nightly job, now)."""
        if not request.user.has_perm("predictions.add_batchjob"):
            raise PermissionDenied
        if request.method == "POST":
            try:
                job = batch_job_create(
                    scope=BatchJobScope.ALL, actor=actor_for_request(request), origin=BatchJobOrigin.ADMIN
                )
            except ModelUnavailable as exc:
                self.message_user(request, f"No job started: {exc}.", messages.ERROR)
                return redirect("admin:predictions_batchjob_changelist")
            self.message_user(request, f"Batch job {job.pk} queued: scoring every customer with "
                                       f"{job.model_version.version}.", messages.SUCCESS)
            return redirect("admin:predictions_batchjob_change", job.pk)
        from customers.models import Customer
        from modelregistry.models import ModelVersion

        context = {
            **self.admin_site.each_context(request),
            "title": "Start a full scoring",
            "opts": self.model._meta,
            "customers": Customer.objects.count(),
            "model": ModelVersion.objects.active().first(),
            "running": BatchJob.objects.filter(status__in=(BatchJobStatus.QUEUED, BatchJobStatus.RUNNING)).count(),
        }
        return TemplateResponse(request, "admin/predictions/batchjob/start_full.html", context)

    def worker_status_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Workers, queues and running jobs",
            "opts": self.model._meta,
            "report": status_report(inspect_timeout=0.5),
        }
        return TemplateResponse(request, "admin/predictions/batchjob/worker_status.html", context)

    @admin.action(description="Cancel (chunks not started yet are skipped)")
    def cancel_selected(self, request: HttpRequest, queryset: Any) -> None:
        for job in queryset.order_by("pk"):
            try:
                batch_job_cancel(job_id=job.pk, actor=actor_for_request(request))
                self.message_user(request, f"Job {job.pk} cancelled.", messages.SUCCESS)
            except BatchJobStateError as exc:
                self.message_user(request, str(exc), messages.WARNING)

    @admin.action(description="Resume (send unfinished chunks again)")
    def resume_selected(self, request: HttpRequest, queryset: Any) -> None:
        for job in queryset.order_by("pk"):
            try:
                sent = batch_job_resume(job_id=job.pk, actor=actor_for_request(request))
                self.message_user(request, f"Job {job.pk}: {len(sent)} chunks sent again.", messages.SUCCESS)
            except BatchJobStateError as exc:
                self.message_user(request, str(exc), messages.WARNING)

    @admin.action(description="Run again with the same scope (active model)")
    def rerun_selected(self, request: HttpRequest, queryset: Any) -> None:
        for job in queryset.order_by("pk"):
            if job.scope == BatchJobScope.FILE:
                self.message_user(request, f"Job {job.pk} scored an uploaded file; upload it again.", messages.WARNING)
                continue
            try:
                new = batch_job_create(scope=job.scope, filters=job.filters or None,
                                       customer_ids=job.customer_ids or None, actor=actor_for_request(request),
                                       origin=BatchJobOrigin.ADMIN)
            except (ModelUnavailable, BatchJobInputError) as exc:
                self.message_user(request, f"Job {job.pk} not run again: {exc}", messages.ERROR)
                continue
            self.message_user(request, f"Job {new.pk} queued (same scope as job {job.pk}).", messages.SUCCESS)
