from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.defaultfilters import pluralize
from django.template.response import TemplateResponse
from django.urls import path

from accounts.context import actor_for_request
from accounts.models import ALL_SCOPES, DEFAULT_KEY_SCOPES, SCOPE_CHOICES, ApiKey, AuditLogEntry, Department, Membership
from accounts.services import (
    StaffMemberError,
    api_key_create,
    api_key_forget_cached,
    api_key_revoke,
    staff_member_add,
)


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ("name", "key_rate_limit_per_minute", "user_rate_limit_per_minute", "created_at")
    search_fields = ("name",)

    def save_model(self, request: HttpRequest, obj: Department, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change:
            api_key_forget_cached(department_id=obj.pk)


class StaffMemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    email = forms.EmailField(required=False)
    department = forms.ModelChoiceField(queryset=Department.objects.all())
    password = forms.CharField(
        required=False, widget=forms.PasswordInput, help_text="Empty: a random one for a new user, shown once."
    )


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "department", "created_at")
    list_filter = ("department",)
    search_fields = ("user__username",)
    autocomplete_fields = ("department",)
    change_list_template = "admin/accounts/membership/change_list.html"

    def get_urls(self) -> list[Any]:
        extra = [
            path(
                "add-staff/",
                self.admin_site.admin_view(self.add_staff_view),
                name="accounts_membership_add_staff",
            )
        ]
        return extra + super().get_urls()

    def add_staff_view(self, request: HttpRequest) -> HttpResponse:
        """One page for what took four: the user, the staff group and the department membership."""
        if not request.user.has_perm("accounts.add_membership"):
            raise PermissionDenied
        form = StaffMemberForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                added = staff_member_add(
                    username=data["username"], department_name=data["department"].name, email=data["email"],
                    password=data["password"] or None, actor=actor_for_request(request),
                )  # fmt: skip
            except StaffMemberError as exc:
                for field, problems in exc.errors.items():
                    form.add_error(field if field in form.fields else None, problems)
            else:
                text = f"{added.user.username} is a staff member of {data['department'].name}."
                if added.password:
                    text += f" Their password (shown once): {added.password}"
                self.message_user(request, text, messages.SUCCESS)
                return redirect("admin:accounts_membership_changelist")
        context = {**self.admin_site.each_context(request), "form": form, "title": "Add a staff member",
                   "opts": self.model._meta}  # fmt: skip
        return TemplateResponse(request, "admin/accounts/membership/add_staff.html", context)


class ApiKeyCreateForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=SCOPE_CHOICES, initial=DEFAULT_KEY_SCOPES, widget=forms.CheckboxSelectMultiple
    )
    ip_allowlist_text = forms.CharField(
        label="IP allowlist", required=False, help_text="One address or CIDR per line; empty allows any."
    )

    class Meta:
        model = ApiKey
        fields = ("department", "name", "scopes", "expires_at", "rate_limit_per_minute")

    def clean_ip_allowlist_text(self) -> list[str]:
        from accounts.models import validate_ip_allowlist

        entries = [line.strip() for line in self.cleaned_data["ip_allowlist_text"].splitlines() if line.strip()]
        validate_ip_allowlist(entries)
        return entries


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "department", "prefix", "status", "expires_at", "last_used_at", "created_at")
    list_filter = ("department", "revoked_at", "expires_at")
    search_fields = ("name", "prefix")
    actions = ("revoke_selected",)
    readonly_fields = (
        "prefix",
        "revoked_at",
        "revoked_reason",
        "last_used_at",
        "last_used_ip",
        "created_by",
        "created_at",
    )

    def get_form(self, request: HttpRequest, obj: ApiKey | None = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        if obj is None:
            return ("department", "name", "scopes", "ip_allowlist_text", "expires_at", "rate_limit_per_minute")
        return (
            "department",
            "name",
            "prefix",
            "scopes",
            "ip_allowlist",
            "rate_limit_per_minute",
            "expires_at",
            "revoked_at",
            "revoked_reason",
            "last_used_at",
            "last_used_ip",
            "created_by",
            "created_at",
        )

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        if obj is None:
            return ()
        return (*self.readonly_fields, "department")

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            scopes = form.cleaned_data.get("scopes")
            if scopes is not None and not set(scopes) <= ALL_SCOPES:
                raise forms.ValidationError("Unknown scope")
            super().save_model(request, obj, form, change)
            api_key_forget_cached(key_ids=[obj.pk])
            return
        key, plaintext = api_key_create(
            department=form.cleaned_data["department"],
            name=form.cleaned_data["name"],
            actor=actor_for_request(request),
            scopes=list(form.cleaned_data["scopes"]),
            expires_at=form.cleaned_data.get("expires_at"),
            ip_allowlist=form.cleaned_data.get("ip_allowlist_text") or [],
            rate_limit_per_minute=form.cleaned_data.get("rate_limit_per_minute"),
        )
        obj.pk = key.pk
        obj.prefix = key.prefix
        messages.warning(request, f"API key created. Copy it now; it will not be shown again: {plaintext}")

    @admin.action(description="Revoke selected API keys")
    def revoke_selected(self, request: HttpRequest, queryset: Any) -> None:
        already = queryset.filter(revoked_at__isnull=False).count()
        revoked = 0
        for key_id in queryset.filter(revoked_at__isnull=True).values_list("pk", flat=True):
            api_key_revoke(key_id=key_id, actor=actor_for_request(request), reason="revoked in admin")
            revoked += 1
        parts = [f"Revoked {revoked} key{pluralize(revoked)}." if revoked else "No key revoked."]
        if already:
            parts.append(f"{already} {'was' if already == 1 else 'were'} already revoked.")
        self.message_user(request, " ".join(parts), messages.SUCCESS if revoked else messages.WARNING)


@admin.register(AuditLogEntry)
class AuditLogEntryAdmin(admin.ModelAdmin):
    @admin.display(description="object", ordering="object_type")
    def target(self, obj: AuditLogEntry) -> str:
        return f"{obj.object_type} {obj.object_id}".strip()

    # The key columns fit a 1366 px screen beside the filters; the address and request id are on the entry.
    list_display = ("created_at", "actor_label", "department", "action", "target", "outcome")
    list_filter = ("outcome", "action", "department", "object_type")
    search_fields = ("actor_label", "action", "object_id", "request_id")
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
