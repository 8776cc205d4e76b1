"""Forms of the staff pages. They check types only; the services hold the rules."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils import timezone

from campaigns.models import CampaignAction, CampaignSelection, FollowUpStatus, TargetOutcome
from campaigns.selectors.follow_ups import FOLLOW_UP_SORTS, HIGH_OR_CRITICAL
from campaigns.services.follow_ups import UNSET
from campaigns.services.spec import CampaignSpec
from churn_ml.schema import ENUM_FIELDS
from predictions.models import RiskLevel


def _choices(values: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(v, v) for v in values]


def playbook_from_lines(text: str) -> list[dict[str, Any]]:
    """'0: Call' lines to playbook steps; the campaign rules (clean_playbook) check them after."""
    steps = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        day, sep, step = line.partition(":")
        if not sep or not day.strip().isdigit():
            raise forms.ValidationError(f'Line {number}: write "day: step", e.g. "2: Offer email".')
        steps.append({"day": int(day.strip()), "step": step.strip()})
    return steps


class CampaignForm(forms.Form):
    name = forms.CharField(max_length=200)
    goal = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    owner = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    target_risk_levels = forms.MultipleChoiceField(
        label="Risk levels",
        required=False,
        choices=RiskLevel.choices,
        initial=["high", "critical"],
        widget=forms.CheckboxSelectMultiple,
    )
    target_min_probability = forms.FloatField(
        label="Minimum churn probability (%)", required=False, min_value=0, max_value=100
    )
    contract_type = forms.MultipleChoiceField(
        label="Contract types",
        required=False,
        choices=_choices(ENUM_FIELDS["contract_type"]),
        widget=forms.CheckboxSelectMultiple,
    )
    internet_service = forms.MultipleChoiceField(
        label="Internet service",
        required=False,
        choices=_choices(ENUM_FIELDS["internet_service"]),
        widget=forms.CheckboxSelectMultiple,
    )
    risk_increased = forms.BooleanField(
        label="Only customers whose risk level rose at their latest scoring", required=False
    )
    action = forms.ChoiceField(choices=CampaignAction.choices)
    discount_percent = forms.DecimalField(
        label="Discount (%)", required=False, max_digits=5, decimal_places=2,
        help_text="Blank: the targeted risk tier's offer.",
    )
    action_details = forms.CharField(
        label="What staff do or say", required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    control_share = forms.FloatField(label="Control group (%)", initial=10, min_value=0, max_value=90)
    start_date = forms.DateField(initial=timezone.localdate, widget=forms.DateInput(attrs={"type": "date"}))
    end_date = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    horizon_months = forms.IntegerField(label="Revenue horizon (months)", initial=12, min_value=1, max_value=120)
    offer_months = forms.IntegerField(
        label="Offer length (months)", required=False, min_value=0, max_value=120,
        help_text="Blank: the targeted risk tier's, else 3.",
    )
    follow_up_days = forms.IntegerField(label="Follow up within (days)", initial=7, min_value=0, max_value=365)
    selection = forms.ChoiceField(
        label="Whom to contact", choices=CampaignSelection.choices, initial="threshold", required=False
    )
    save_rate_prior = forms.FloatField(
        label="Save rate until measured (%)", required=False, min_value=0, max_value=100,
        help_text="Share of would-be churners a contact keeps; the campaign's measured uplift replaces it.",
    )
    budget_offers = forms.IntegerField(label="Budget: at most this many offers", required=False, min_value=1)
    budget_money = forms.DecimalField(
        label="Budget: at most this much on offers", required=False, min_value=0, max_digits=12, decimal_places=2
    )

    playbook = forms.CharField(
        label="Playbook", required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text='One step a line, "day: what to do", e.g. "0: Call" then "2: Offer email". Empty: the '
        "action's default steps.",
    )

    department = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)

    def clean_playbook(self) -> list[dict[str, Any]]:
        return playbook_from_lines(self.cleaned_data.get("playbook") or "")

    def __init__(
        self,
        *args: Any,
        owners: list[tuple[int, str]] = (),  # type: ignore[assignment]
        departments: list[tuple[int, str]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["owner"].choices = [("", "(nobody)"), *owners]
        if departments is None:  # only superusers choose; everyone else creates for their own department
            del self.fields["department"]
        else:
            self.fields["department"].choices = departments
            self.fields["department"].required = True

    def spec(self) -> CampaignSpec:
        data = self.cleaned_data
        filters = {
            name: data[name] for name in ("contract_type", "internet_service", "risk_increased") if data.get(name)
        }
        minimum = data.get("target_min_probability")
        return CampaignSpec(
            name=data["name"],
            goal=data.get("goal") or "",
            owner_id=data.get("owner"),
            target_risk_levels=list(data.get("target_risk_levels") or []),
            target_min_probability=minimum / 100 if minimum is not None else None,
            target_filters=filters,
            action=data["action"],
            discount_percent=data.get("discount_percent"),
            action_details=data.get("action_details") or "",
            control_share=data["control_share"] / 100,
            start_date=data["start_date"],
            end_date=data.get("end_date"),
            horizon_months=data["horizon_months"],
            offer_months=data.get("offer_months"),
            follow_up_days=data["follow_up_days"],
            selection=data.get("selection") or "threshold",
            save_rate_prior=data["save_rate_prior"] / 100 if data.get("save_rate_prior") is not None else None,
            budget_offers=data.get("budget_offers"),
            budget_money=data.get("budget_money"),
            playbook=data.get("playbook") or [],
        )


class EnrolForm(forms.Form):
    assignees = forms.TypedMultipleChoiceField(
        required=False,
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
        help_text="Follow-ups are dealt round-robin among them.",
    )
    limit = forms.IntegerField(required=False, min_value=1, help_text="At most this many, riskiest first.")

    def __init__(self, *args: Any, staff: list[tuple[int, str]] = (), **kwargs: Any) -> None:  # type: ignore[assignment]
        super().__init__(*args, **kwargs)
        self.fields["assignees"].choices = staff


class FollowUpForm(forms.Form):
    """The one-step follow-up update. Fields left out of the POST are left unchanged."""

    follow_up_status = forms.ChoiceField(required=False, choices=[("", "---"), *FollowUpStatus.choices])
    outcome = forms.ChoiceField(required=False, choices=[("", "---"), *TargetOutcome.choices])
    due_date = forms.DateField(required=False)
    assignee = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    note = forms.CharField(required=False, max_length=5000)

    def __init__(self, *args: Any, staff: list[tuple[int, str]] = (), **kwargs: Any) -> None:  # type: ignore[assignment]
        super().__init__(*args, **kwargs)
        self.fields["assignee"].choices = [("", "(unassigned)"), *staff]

    def changes(self) -> dict[str, Any]:
        data, sent = self.cleaned_data, self.data
        out: dict[str, Any] = {"note": data.get("note") or ""}
        if data.get("follow_up_status"):
            out["follow_up_status"] = data["follow_up_status"]
        if data.get("outcome"):
            out["outcome"] = data["outcome"]
        out["due_date"] = data.get("due_date") if "due_date" in sent else UNSET
        out["assignee_id"] = data.get("assignee") if "assignee" in sent else UNSET
        return out


class FollowUpFilterForm(forms.Form):
    assignee = forms.CharField(required=False)
    status = forms.ChoiceField(
        required=False, choices=[("open", "Open"), ("any", "Any status"), *FollowUpStatus.choices]
    )
    campaign = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    risk_level = forms.ChoiceField(
        required=False, choices=[("", "Any risk"), (HIGH_OR_CRITICAL, "High or critical"), *RiskLevel.choices]
    )
    due = forms.ChoiceField(
        required=False,
        choices=[("", "Any due date"), ("overdue", "Overdue"), ("today", "Due today"), ("week", "Due within 7 days")],
    )
    outcome = forms.ChoiceField(required=False, choices=[("", "Any outcome"), *TargetOutcome.choices])
    q = forms.CharField(required=False, max_length=64, label="Customer id")
    sort = forms.ChoiceField(
        required=False,
        choices=[
            ("due", "Due date"),
            ("-due", "Due date, latest first"),
            ("risk", "Highest risk"),
            ("customer", "Customer id"),
            ("status", "Status"),
            ("updated", "Recently updated"),
            ("campaign", "Campaign"),
        ],
    )

    def __init__(self, *args: Any, campaigns: list[tuple[int, str]] = (), **kwargs: Any) -> None:  # type: ignore[assignment]
        super().__init__(*args, **kwargs)
        self.fields["campaign"].choices = [("", "All campaigns"), *campaigns]

    def clean_sort(self) -> str:
        value = self.cleaned_data.get("sort") or "due"
        return value if value in FOLLOW_UP_SORTS else "due"


class BulkFollowUpForm(forms.Form):
    """Bulk work on the follow-up list: one or more changes for the selected rows or the whole filter."""

    scope = forms.ChoiceField(choices=[("selected", "Selected follow-ups"), ("filter", "Every follow-up in this list")])
    targets = forms.Field(required=False)  # ids, read as a list in clean_targets
    assignee = forms.CharField(required=False, help_text="A staff member's id, 'none' to unassign, empty: unchanged.")
    follow_up_status = forms.ChoiceField(
        required=False,
        choices=[("", "(unchanged)"), *[c for c in FollowUpStatus.choices if c[0] != FollowUpStatus.DO_NOT_CONTACT]],
    )
    due_date = forms.DateField(required=False)
    clear_due_date = forms.BooleanField(required=False)
    query = forms.CharField(required=False, max_length=2000)

    def __init__(self, *args: Any, staff: list[tuple[int, str]] = (), **kwargs: Any) -> None:  # type: ignore[assignment]
        super().__init__(*args, **kwargs)
        self._staff = {pk for pk, _ in staff}

    def clean_targets(self) -> list[int]:
        # Any id is accepted here; the service checks that each one is visible to the caller.
        return [int(v) for v in self.data.getlist("targets") if str(v).isdigit()]

    def clean_assignee(self) -> Any:
        value = (self.cleaned_data.get("assignee") or "").strip()
        if value in ("", "none"):
            return value
        if not value.isdigit() or int(value) not in self._staff:
            raise forms.ValidationError("Choose a staff member of the campaigns' departments.")
        return int(value)

    def changes(self) -> dict[str, Any]:
        data = self.cleaned_data
        out: dict[str, Any] = {}
        if data["assignee"] == "none":
            out["assignee_id"] = None
        elif data["assignee"] != "":
            out["assignee_id"] = data["assignee"]
        if data.get("follow_up_status"):
            out["follow_up_status"] = data["follow_up_status"]
        if data.get("clear_due_date"):
            out["due_date"] = None
        elif data.get("due_date"):
            out["due_date"] = data["due_date"]
        return out
