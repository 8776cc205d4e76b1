"""Operator admin for campaigns and follow-ups. State changes go through the services (audited)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.auth import get_user_model
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest

from accounts.context import actor_for_request
from accounts.services import STAFF_GROUP, audit_record
from campaigns.forms import playbook_from_lines
from campaigns.models import CampaignStatus, CampaignTarget, RetentionCampaign, TargetNote
from campaigns.services.common import CampaignError, NotVisible
from campaigns.services.follow_ups import campaign_targets_assign
from campaigns.services.lifecycle import campaign_close, campaign_enrol
from campaigns.services.spec import clean_playbook, clean_target_filters
from churn_infra.form_fields import MappingField
from customers.filters import BOUND_FILTERS, LIST_FILTERS, canonical_filter_name


def _own(request: HttpRequest, qs: QuerySet[Any], path: str) -> QuerySet[Any]:
    """Superusers see every department; other admin users see their own department's rows."""
    if request.user.is_superuser:
        return qs
    return qs.filter(**{path: actor_for_request(request).department_id})


def _typed_filter(name: str, text: str) -> Any:
    """One targeting filter's value from the words an operator typed."""
    if canonical_filter_name(name) in LIST_FILTERS:
        return [part.strip() for part in text.split(",") if part.strip()]
    if canonical_filter_name(name) in BOUND_FILTERS:
        try:
            return float(text) if "." in text else int(text)
        except ValueError:
            return text  # clean_target_filters names the problem
    if text.lower() in ("yes", "true", "1"):
        return True
    if text.lower() in ("no", "false", "0"):
        return False
    return text


class CampaignAdminForm(forms.ModelForm):
    """Targeting rules and the playbook as lines, checked by the same rules as the API and the staff pages."""

    target_filters = MappingField(
        help_text="One filter a line: contract_type = Month-to-month, One year; internet_service = Fiber optic; "
        "min_tenure_months = 0; max_monthly_charges = 80; senior_citizen = yes; risk_increased = yes."
    )
    playbook = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text='One step a line, "day: what to do". Empty: the action\'s default steps.',
    )

    class Meta:
        model = RetentionCampaign
        fields = "__all__"  # noqa: DJ007 - the ModelAdmin decides which fields show; this form shapes two of them

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.playbook:
            self.initial["playbook"] = "\n".join(f"{s['day']}: {s['step']}" for s in self.instance.playbook)
        filters = self.initial.get("target_filters")
        if isinstance(filters, dict):
            self.initial["target_filters"] = {
                k: ", ".join(map(str, v)) if isinstance(v, list) else ("yes" if v is True else v)
                for k, v in filters.items()
            }

    def clean_target_filters(self) -> dict[str, Any]:
        typed = {name: _typed_filter(name, text) for name, text in self.cleaned_data["target_filters"].items()}
        try:
            return clean_target_filters(typed)
        except CampaignError as exc:
            raise forms.ValidationError(exc.errors["target_filters"]) from None

    def clean_playbook(self) -> list[dict[str, Any]]:
        steps = playbook_from_lines(self.cleaned_data.get("playbook") or "")
        try:
            return clean_playbook(steps)
        except CampaignError as exc:
            raise forms.ValidationError(exc.errors["playbook"]) from None


@admin.register(RetentionCampaign)
class RetentionCampaignAdmin(admin.ModelAdmin):
    form = CampaignAdminForm
    list_display = ("name", "department", "status", "action", "start_date", "end_date", "control_share", "targets")
    list_filter = ("status", "action", "department", "start_date")
    search_fields = ("name", "goal")
    date_hierarchy = "start_date"
    autocomplete_fields = ("department",)
    raw_id_fields = ("owner",)
    readonly_fields = ("status", "enrolled_at", "closed_at", "created_by", "created_at", "updated_at")
    actions = ("enrol_selected", "close_selected")

    def get_queryset(self, request: HttpRequest) -> QuerySet[RetentionCampaign]:
        qs = super().get_queryset(request).select_related("department").annotate(target_count=Count("targets"))
        return _own(request, qs, "department_id")

    @admin.display(ordering="target_count", description="targets")
    def targets(self, obj: RetentionCampaign) -> int:
        return obj.target_count  # type: ignore[attr-defined]

    def save_model(self, request: HttpRequest, obj: RetentionCampaign, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        audit_record(
            actor=actor_for_request(request),
            action="campaign.update" if change else "campaign.create",
            obj=obj,
            department_id=obj.department_id,
            details={"changed": sorted(form.changed_data), "via": "admin"},
        )

    @admin.action(description="Enrol matching customers (starts draft campaigns)")
    def enrol_selected(self, request: HttpRequest, queryset: QuerySet[RetentionCampaign]) -> None:
        for campaign in queryset:
            try:
                result = campaign_enrol(campaign_id=campaign.pk, actor=actor_for_request(request))
            except (CampaignError, NotVisible) as exc:
                self.message_user(request, f"{campaign}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{campaign}: enrolled {result.enrolled} ({result.control} control).")

    @admin.action(description="Close selected campaigns")
    def close_selected(self, request: HttpRequest, queryset: QuerySet[RetentionCampaign]) -> None:
        for campaign in queryset.exclude(status=CampaignStatus.CLOSED):
            campaign_close(campaign_id=campaign.pk, actor=actor_for_request(request))
        self.message_user(request, "Closed.")


class AssignForm(ActionForm):
    assignee = forms.ModelChoiceField(
        queryset=get_user_model()
        .objects.filter(is_active=True)
        .filter(Q(is_staff=True) | Q(groups__name=STAFF_GROUP))
        .distinct()
        .order_by("username"),
        required=False,
        label="Assign to",
    )


class TargetNoteInline(admin.TabularInline):
    model = TargetNote
    fields = ("created_at", "author_label", "text")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CampaignTarget)
class CampaignTargetAdmin(admin.ModelAdmin):
    """Follow-ups, read-only here: staff change them on the staff pages; bulk assignment is an action."""

    list_display = (
        "customer", "campaign", "group", "assignee", "follow_up_status", "due_date", "outcome",
        "qualifying_risk_level", "qualifying_probability",
    )  # fmt: skip
    list_filter = ("campaign", "group", "follow_up_status", "outcome", "qualifying_risk_level", "assignee", "due_date")
    search_fields = ("customer__customer_id", "campaign__name")
    list_select_related = ("customer", "campaign", "assignee")
    raw_id_fields = ("customer", "prediction", "assignee")
    inlines = (TargetNoteInline,)
    action_form = AssignForm
    actions = ("assign_selected", "unassign_selected")

    def get_queryset(self, request: HttpRequest) -> QuerySet[CampaignTarget]:
        return _own(request, super().get_queryset(request), "campaign__department_id")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def _assign(self, request: HttpRequest, queryset: QuerySet[CampaignTarget], assignee_id: int | None) -> None:
        try:
            changed = campaign_targets_assign(
                target_ids=list(queryset.values_list("pk", flat=True)),
                assignee_id=assignee_id,
                actor=actor_for_request(request),
            )
        except CampaignError as exc:
            self.message_user(request, " ".join(m for ms in exc.errors.values() for m in ms), messages.ERROR)
        except NotVisible:
            self.message_user(request, "Some selected follow-ups belong to another department.", messages.ERROR)
        else:
            self.message_user(request, f"{changed} follow-up(s) changed; control-group customers are never assigned.")

    @admin.action(description="Assign selected follow-ups to the chosen staff member")
    def assign_selected(self, request: HttpRequest, queryset: QuerySet[CampaignTarget]) -> None:
        assignee = request.POST.get("assignee")
        if not assignee:
            self.message_user(request, "Choose the staff member to assign to.", messages.ERROR)
            return
        self._assign(request, queryset, int(assignee))

    @admin.action(description="Unassign selected follow-ups")
    def unassign_selected(self, request: HttpRequest, queryset: QuerySet[CampaignTarget]) -> None:
        self._assign(request, queryset, None)
