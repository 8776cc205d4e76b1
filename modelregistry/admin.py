"""Operator admin for the registry: read-only rows; state changes are POST actions calling services.

Over 500 lines on purpose: the admin of one app's models, each with its POST actions; what the
actions do lives in modelregistry.services.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from accounts.context import actor_for_request
from churn_infra import svg
from modelregistry.live import live_performance_of, live_rows_of
from modelregistry.models import (
    ABTest,
    ABTestStatus,
    ModelEvent,
    ModelStatus,
    ModelVersion,
    RetrainingRun,
    TriggerEvaluation,
    TriggerKind,
)
from modelregistry.retraining import retraining_scheduled, retraining_triggers_evaluate
from modelregistry.services import (
    PromotionRefused,
    ab_test_report,
    ab_test_start,
    ab_test_stop,
    model_promote,
    model_rollback,
    model_version_set_status,
    promotion_preview,
)

# The admin does not load the staff stylesheet: the charts' classes, inline (a constant string).
REPORT_STYLE = mark_safe(
    "<style>svg.chart{width:48%;max-width:420px;font:11px sans-serif}svg.chart .grid{stroke:#ccc}"
    "svg.chart .line{stroke-width:2}svg.chart .treatment{stroke:#2b6cb0;fill:#2b6cb0}"
    "svg.chart .control{stroke:#dd6b20;fill:#dd6b20}svg.chart polyline{fill:none}</style>"
)

METRIC_COLUMNS = ("roc_auc", "pr_auc", "brier", "ece", "accuracy", "f1")


SIDE_BY_SIDE = (("roc_auc", "ROC AUC (held out)"), ("pr_auc", "PR AUC"), ("brier", "Brier (lower is better)"),
                ("ece", "ECE (lower is better)"), ("accuracy", "accuracy"), ("cv_roc_auc_mean", "CV ROC AUC"))


def metrics_side_by_side(a: ModelVersion, b: ModelVersion | None) -> list[tuple[str, str, str]]:
    """(metric, a's figure, b's figure) for a confirmation page: training metrics, then live ROC AUC."""
    live_a, live_b = live_performance_of(a), live_performance_of(b) if b is not None else None
    rows = [
        (label, _figure((a.metrics or {}).get(key)), _figure((b.metrics or {}).get(key)) if b is not None else "-")
        for key, label in SIDE_BY_SIDE
    ]
    rows.append((
        "live ROC AUC (recorded outcomes)",
        _figure(((live_a or {}).get("realized") or {}).get("roc_auc")),
        _figure(((live_b or {}).get("realized") or {}).get("roc_auc")) if b is not None else "-",
    ))
    return rows


def _figure(value: float | None) -> str:
    """A measured figure for people: four significant digits (0.3289), '-' when not measured."""
    return "-" if not isinstance(value, int | float) else f"{value:.4g}"



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
    list_display = (
        "version",
        "status",
        "algorithm",
        *(f"m_{m}" for m in METRIC_COLUMNS),
        "training_rows",
        "promoted_at",
        "created_at",
    )
    list_filter = ("status", "algorithm")
    search_fields = ("version", "notes")
    actions = (
        "promote_selected",
        "force_promote_selected",
        "rollback_active",
        "deprecate_selected",
        "archive_selected",
        "start_ab_test",
    )
    inlines = (ModelEventInline,)
    readonly_fields = (
        "version",
        "algorithm",
        "status",
        "metrics_table",
        "live_figures",
        "report_charts",
        "artifact",
        "artifact_sha256",
        "artifact_size",
        "feature_spec_version",
        "schema_version",
        "training_data_sha256",
        "training_rows",
        "training_source",
        "trained_by",
        "promoted_by",
        "promoted_at",
        "previous_active",
        "error",
        "created_at",
        "updated_at",
    )
    fields = (*readonly_fields, "notes")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="metrics")
    def metrics_table(self, obj: ModelVersion) -> str:
        rows = [(k, v) for k, v in sorted(obj.metrics.items()) if not isinstance(v, dict)]
        return format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))

    @admin.display(description="live performance")
    def live_figures(self, obj: ModelVersion) -> str:
        rows = []
        for row in live_rows_of(obj):
            realized, estimated = row.realized or {}, row.estimated or {}
            ci = realized.get("roc_auc_ci95") or (None, None)
            rows.append((
                row.scope,
                f"{row.as_of:%Y-%m-%d %H:%M}",
                realized.get("n", 0),
                _fmt(realized.get("roc_auc")),
                f"{_fmt(ci[0])} to {_fmt(ci[1])}",
                _fmt(realized.get("accuracy")),
                _fmt(realized.get("brier")),
                _fmt(realized.get("ece")),
                estimated.get("n", 0),
                _fmt(estimated.get("roc_auc")),
                _fmt(estimated.get("accuracy")),
            ))
        if not rows:
            return "No live figures yet: they appear after the first outcomes are joined to this version's predictions."
        header = mark_safe(  # a constant string
            "<tr><th>scope</th><th>as of</th><th>outcomes</th><th>ROC AUC</th><th>95% CI (DeLong)</th>"
            "<th>accuracy</th><th>Brier</th><th>ECE</th><th>no outcome yet</th><th>CBPE ROC AUC</th>"
            "<th>CBPE accuracy</th></tr>"
        )
        body = format_html_join("", "<tr>" + "<td>{}</td>" * 11 + "</tr>", rows)
        ece = obj.metrics.get("ece")
        note = format_html(
            "<p>CBPE estimates assume calibrated probabilities; this model's held-out ECE is {}.</p>", _fmt(ece)
        )
        return format_html("<table>{}{}</table>{}", header, body, note)

    @admin.display(description="report (held-out and live)")
    def report_charts(self, obj: ModelVersion) -> str:
        held_out = obj.report or {}
        live = next((r.report for r in live_rows_of(obj) if r.scope == "all" and r.report), None)
        reports = [("held-out", held_out, "treatment"), ("live outcomes", live, "control")]
        gains = [
            (name, [(g["share"], g["captured"]) for g in report["gains"] if g["captured"] is not None], css)
            for name, report, css in reports
            if report and report.get("gains")
        ]
        calibration = [
            (name, [(b["mean_predicted"], b["observed"]) for b in report["calibration"] if b["n"]], css)
            for name, report, css in reports
            if report and report.get("calibration")
        ]
        if not gains:
            return "No report: this version was registered without held-out rows."
        lift = format_html_join(
            "",
            "<tr><td>{}</td><td>top {}</td><td>{}</td><td>{}</td></tr>",
            (
                (name, f"{row['top_share']:.0%}", _fmt(row["lift"]), _fmt(row["captured"]))
                for name, report, _ in reports
                if report
                for row in report.get("lift", [])
            ),
        )
        backtest = (held_out.get("backtest") or {})
        return format_html(
            "{}<div>{}{}</div><table><tr><th>data</th><th>customers</th><th>lift</th><th>churners captured</th></tr>"
            "{}</table><p>Backtest: {} {}</p>",
            REPORT_STYLE,
            svg.line_chart(gains, title="Cumulative gains", x_label="customers contacted (by risk)",
                           y_label="churners captured", diagonal=True),
            svg.line_chart(calibration, title="Calibration", x_label="mean predicted", y_label="observed churn",
                           diagonal=True),
            lift,
            backtest.get("result") or "",
            backtest.get("reason", ""),
        )

    def _run(self, request: HttpRequest, queryset: Any, do: Any, done: str) -> None:
        for version in queryset.order_by("pk"):
            try:
                do(version)
                self.message_user(request, f"{version.version}: {done}.", messages.SUCCESS)
            except PromotionRefused as exc:
                self.message_user(request, str(exc), messages.ERROR)

    def _confirm_promotion(self, request: HttpRequest, queryset: Any, action: str) -> HttpResponse | None:
        """First the gate's comparison on a confirmation page; the promotion on its confirmed POST."""
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to promote.", messages.ERROR)
            return None
        version = queryset.get()
        force = action == "force_promote_selected"
        if request.POST.get("confirm") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": f"Promote {version.version}",
                "version": version,
                "comparison": promotion_preview(version=version.version),
                "rows": metrics_side_by_side(version, ModelVersion.objects.active().first()),
                "action": action,
                "opts": self.model._meta,
            }
            return TemplateResponse(request, "admin/modelregistry/modelversion/promote_confirm.html", context)
        reason = request.POST.get("reason", "").strip()
        if force:
            reason = reason or f"forced in admin by {request.user}"
        self._run(
            request,
            queryset,
            lambda v: model_promote(version=v.version, actor=actor_for_request(request), force=force, reason=reason),
            "promoted (forced)" if force else "promoted",
        )
        return None

    @admin.action(description="Promote to active (registry rules apply)")
    def promote_selected(self, request: HttpRequest, queryset: Any) -> HttpResponse | None:
        return self._confirm_promotion(request, queryset, "promote_selected")

    @admin.action(description="Force promote (even if worse than the active model)")
    def force_promote_selected(self, request: HttpRequest, queryset: Any) -> HttpResponse | None:
        return self._confirm_promotion(request, queryset, "force_promote_selected")

    @admin.action(description="Roll back to the previously active version")
    def rollback_active(self, request: HttpRequest, queryset: Any) -> HttpResponse | None:
        """First both versions' figures side by side on a confirmation page; the roll back on its POST."""
        active = ModelVersion.objects.active().select_related("previous_active").first()
        if request.POST.get("confirm") != "yes" and active is not None and active.previous_active is not None:
            context = {
                **self.admin_site.each_context(request),
                "title": f"Roll back to {active.previous_active.version}",
                "active": active,
                "previous": active.previous_active,
                "rows": metrics_side_by_side(active.previous_active, active),
                "selected": list(queryset.values_list("pk", flat=True)),
                "opts": self.model._meta,
            }
            return TemplateResponse(request, "admin/modelregistry/modelversion/rollback_confirm.html", context)
        try:
            restored = model_rollback(
                actor=actor_for_request(request), reason=f"rolled back in admin by {request.user}"
            )
            self.message_user(request, f"Rolled back: {restored.version} is active again.", messages.SUCCESS)
        except PromotionRefused as exc:
            self.message_user(request, str(exc), messages.ERROR)
        return None

    @admin.action(description="Deprecate")
    def deprecate_selected(self, request: HttpRequest, queryset: Any) -> None:
        self._run(
            request,
            queryset,
            lambda v: model_version_set_status(
                version=v.version, status=ModelStatus.DEPRECATED, actor=actor_for_request(request)
            ),
            "deprecated",
        )

    @admin.action(description="Archive")
    def archive_selected(self, request: HttpRequest, queryset: Any) -> None:
        self._run(
            request,
            queryset,
            lambda v: model_version_set_status(
                version=v.version, status=ModelStatus.ARCHIVED, actor=actor_for_request(request)
            ),
            "archived",
        )

    @admin.action(description="Start an A/B test: this version scores 10%% of customers")
    def start_ab_test(self, request: HttpRequest, queryset: Any) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to test.", messages.ERROR)
            return
        self._run(
            request,
            queryset,
            lambda v: ab_test_start(version=v.version, traffic_percent=10, actor=actor_for_request(request)),
            "now scores 10% of customers next to the active model",
        )


for _name in METRIC_COLUMNS:
    setattr(ModelVersionAdmin, f"m_{_name}", staticmethod(_metric(_name)))
# --- retraining -------------------------------------------------------------------------------


class TriggerEvaluationInline(admin.TabularInline):
    model = TriggerEvaluation
    extra = 0
    can_delete = False
    fields = ("created_at", "kind", "value", "threshold", "decision", "sample_size")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(RetrainingRun)
class RetrainingRunAdmin(admin.ModelAdmin):
    """Retraining runs; "Retrain now" and "Evaluate triggers now" are POST-only buttons calling services."""

    list_display = (
        "id",
        "created_at",
        "trigger",
        "status",
        "policy",
        "candidate_version",
        "candidate_auc",
        "active_auc",
        "decision",
        "duration_seconds",
        "requested_by",
    )
    list_filter = ("status", "trigger", "decision", "policy")
    list_select_related = ("candidate_version", "active_version")
    inlines = (TriggerEvaluationInline,)
    change_list_template = "admin/modelregistry/retrainingrun/change_list.html"
    readonly_fields = (
        "trigger",
        "status",
        "policy",
        "margin",
        "reason",
        "active_version",
        "candidate_version",
        "candidate_auc",
        "active_auc",
        "training_rows",
        "decision",
        "decision_reason",
        "requested_by",
        "details",
        "error",
        "started_at",
        "finished_at",
        "duration_seconds",
        "created_at",
    )
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self):  # type: ignore[no-untyped-def]
        own = [
            path("start/", self.admin_site.admin_view(self.start_view), name="modelregistry_retrainingrun_start"),
            path(
                "evaluate/", self.admin_site.admin_view(self.evaluate_view), name="modelregistry_retrainingrun_evaluate"
            ),
        ]
        return own + super().get_urls()

    def _allowed(self, request: HttpRequest) -> None:
        if request.method != "POST":
            raise PermissionDenied("POST only")
        if not request.user.has_perm("modelregistry.change_modelversion"):
            raise PermissionDenied

    def start_view(self, request: HttpRequest) -> HttpResponse:
        """Queue a manual retraining (the promotion policy of the settings applies)."""
        self._allowed(request)
        evaluation = retraining_scheduled(
            actor=actor_for_request(request),
            trigger=TriggerKind.MANUAL,
            reason=f"started in the admin by {request.user}",
        )
        if evaluation.retraining_run_id is None:
            self.message_user(request, "Not started: a retraining is already queued or running.", messages.WARNING)
            return redirect("admin:modelregistry_retrainingrun_changelist")
        self.message_user(
            request,
            f"Retraining {evaluation.retraining_run_id} queued (policy {settings.RETRAIN_PROMOTION_POLICY}).",
            messages.SUCCESS,
        )
        return redirect("admin:modelregistry_retrainingrun_change", evaluation.retraining_run_id)

    def evaluate_view(self, request: HttpRequest) -> HttpResponse:
        """Measure the drift, accuracy and confidence triggers now (retraining if one fires)."""
        self._allowed(request)
        evaluations = retraining_triggers_evaluate(actor=actor_for_request(request))
        summary = "; ".join(
            f"{e.kind}: {_figure(e.value)} vs {_figure(e.threshold)} ({e.get_decision_display()})"
            for e in evaluations
        )
        self.message_user(request, f"Triggers evaluated. {summary}", messages.INFO)
        return redirect("admin:modelregistry_triggerevaluation_changelist")


@admin.register(TriggerEvaluation)
class TriggerEvaluationAdmin(admin.ModelAdmin):
    """Every trigger check with its value, threshold and decision; read-only."""

    list_display = (
        "created_at",
        "kind",
        "value",
        "threshold",
        "decision",
        "sample_size",
        "model_version",
        "retraining_run",
    )
    list_filter = ("kind", "decision")
    list_select_related = ("model_version", "retraining_run")
    date_hierarchy = "created_at"
    change_list_template = "admin/modelregistry/retrainingrun/change_list.html"
    readonly_fields = (
        "created_at",
        "kind",
        "model_version",
        "value",
        "threshold",
        "decision",
        "sample_size",
        "details",
        "retraining_run",
    )
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- A/B tests --------------------------------------------------------------------------------


@admin.register(ABTest)
class ABTestAdmin(admin.ModelAdmin):
    """A/B tests: read-only rows with each arm's live figures; stopping goes through the service."""

    list_display = ("created_at", "challenger", "champion", "traffic_percent", "status", "stopped_at", "conclusion")
    list_filter = ("status",)
    actions = ("stop_test", "stop_and_promote")
    readonly_fields = (
        "challenger",
        "champion",
        "traffic_percent",
        "status",
        "started_by",
        "stopped_by",
        "stopped_at",
        "conclusion",
        "report",
        "created_at",
    )
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.method in ("GET", "HEAD")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="arms")
    def report(self, obj: ABTest) -> str:
        arms = ab_test_report(test=obj)["arms"]
        rows = [
            (
                name,
                arm["version"],
                arm["predictions"],
                arm["outcomes"],
                _fmt(arm["live_accuracy"]),
                _fmt(arm["live_roc_auc"]),
                _fmt(arm["held_out_roc_auc"]),
            )
            for name, arm in arms.items()
        ]
        # A constant string: no user data reaches it.
        header = mark_safe(
            "<tr><th>arm</th><th>version</th><th>predictions</th><th>outcomes</th><th>live accuracy</th>"
            "<th>live ROC AUC</th><th>held-out ROC AUC</th></tr>"
        )
        body = format_html_join("", "<tr>" + "<td>{}</td>" * 7 + "</tr>", rows)
        return format_html("<table>{}{}</table>", header, body)

    def _stop(self, request: HttpRequest, queryset: Any, *, promote: bool) -> None:
        if not queryset.filter(status=ABTestStatus.RUNNING).exists():
            self.message_user(request, "Select the running A/B test.", messages.ERROR)
            return
        try:
            test = ab_test_stop(actor=actor_for_request(request), promote=promote)
        except PromotionRefused as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        done = f"{test.challenger.version} is now the active model" if promote else "the active model scores everyone"
        self.message_user(request, f"A/B test stopped; {done}.", messages.SUCCESS)

    @admin.action(description="Stop the test (keep the active model)")
    def stop_test(self, request: HttpRequest, queryset: Any) -> None:
        self._stop(request, queryset, promote=False)

    @admin.action(description="Stop the test and promote the challenger")
    def stop_and_promote(self, request: HttpRequest, queryset: Any) -> None:
        self._stop(request, queryset, promote=True)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
