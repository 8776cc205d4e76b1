"""Operator admin for the registry: read-only rows; state changes are POST actions calling services."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from accounts.services import actor_for_user
from modelregistry.models import ModelEvent, ModelStatus, ModelVersion
from modelregistry.services import PromotionRefused, model_promote, model_rollback, model_version_set_status

METRIC_COLUMNS = ("roc_auc", "pr_auc", "brier", "ece", "accuracy", "f1")


def _actor(request: HttpRequest):  # type: ignore[no-untyped-def]
    return actor_for_user(request.user, ip=request.META.get("REMOTE_ADDR"), request_id=getattr(request, "request_id", None))


class ModelEventInline(admin.TabularInline):
    model = ModelEvent
    extra = 0
    can_delete = False
    fields = ("created_at", "kind", "actor_label", "details")
    readonly_fields = fields
    ordering = ("-created_at",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _metric(name: str):  # type: ignore[no-untyped-def]
    def column(obj: ModelVersion) -> str:
        value = obj.metrics.get(name)
        return f"{value:.4f}" if isinstance(value, (int, float)) else "-"

    column.short_description = name.upper().replace("_", " ")  # type: ignore[attr-defined]
    return column


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("version", "status", "algorithm", *(f"m_{m}" for m in METRIC_COLUMNS), "training_rows",
                    "promoted_at", "created_at")
    list_filter = ("status", "algorithm")
    search_fields = ("version", "notes")
    actions = ("promote_selected", "force_promote_selected", "rollback_active", "deprecate_selected",
               "archive_selected")
    inlines = (ModelEventInline,)
    readonly_fields = ("version", "algorithm", "status", "metrics_table", "artifact", "artifact_sha256",
                       "artifact_size", "feature_spec_version", "schema_version", "training_data_sha256",
                       "training_rows", "training_source", "trained_by", "promoted_by", "promoted_at",
                       "previous_active", "error", "created_at", "updated_at")
    fields = (*readonly_fields, "notes")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="metrics")
    def metrics_table(self, obj: ModelVersion) -> str:
        rows = [(k, v) for k, v in sorted(obj.metrics.items()) if not isinstance(v, dict)]
        return format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))

    def _run(self, request: HttpRequest, queryset: Any, do: Any, done: str) -> None:
        for version in queryset.order_by("pk"):
            try:
                do(version)
                self.message_user(request, f"{version.version}: {done}.", messages.SUCCESS)
            except PromotionRefused as exc:
                self.message_user(request, str(exc), messages.ERROR)

    @admin.action(description="Promote to active (registry rules apply)")
    def promote_selected(self, request: HttpRequest, queryset: Any) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to promote.", messages.ERROR)
            return
        self._run(request, queryset, lambda v: model_promote(version=v.version, actor=_actor(request)), "promoted")

    @admin.action(description="Force promote (even if worse than the active model)")
    def force_promote_selected(self, request: HttpRequest, queryset: Any) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to promote.", messages.ERROR)
            return
        self._run(request, queryset, lambda v: model_promote(
            version=v.version, actor=_actor(request), force=True, reason=f"forced in admin by {request.user}"
        ), "promoted (forced)")

    @admin.action(description="Roll back to the previously active version")
    def rollback_active(self, request: HttpRequest, queryset: Any) -> None:
        try:
            restored = model_rollback(actor=_actor(request), reason=f"rolled back in admin by {request.user}")
            self.message_user(request, f"Rolled back: {restored.version} is active again.", messages.SUCCESS)
        except PromotionRefused as exc:
            self.message_user(request, str(exc), messages.ERROR)

    @admin.action(description="Deprecate")
    def deprecate_selected(self, request: HttpRequest, queryset: Any) -> None:
        self._run(request, queryset, lambda v: model_version_set_status(
            version=v.version, status=ModelStatus.DEPRECATED, actor=_actor(request)), "deprecated")

    @admin.action(description="Archive")
    def archive_selected(self, request: HttpRequest, queryset: Any) -> None:
        self._run(request, queryset, lambda v: model_version_set_status(
            version=v.version, status=ModelStatus.ARCHIVED, actor=_actor(request)), "archived")


for _name in METRIC_COLUMNS:
    setattr(ModelVersionAdmin, f"m_{_name}", staticmethod(_metric(_name)))
