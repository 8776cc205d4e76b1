"""Retention campaigns, the customers they target, and the follow-up notes staff write."""

from __future__ import annotations

from datetime import date, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from predictions.models import RiskLevel


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    CLOSED = "closed", "Closed"


class CampaignAction(models.TextChoices):
    DISCOUNT = "discount", "Discount offer"
    PERSONAL_CALL = "personal_call", "Personal call"
    SATISFACTION_SURVEY = "satisfaction_survey", "Satisfaction survey"
    CUSTOM = "custom", "Custom action"


# What staff do, step by step, for each action when a campaign sets no playbook of its own:
# (day offset from enrolment, step). Short on purpose: a checklist, not a script.
DEFAULT_PLAYBOOKS: dict[str, tuple[dict[str, object], ...]] = {
    "discount": ({"day": 0, "step": "Call and present the offer"}, {"day": 2, "step": "Send the offer by email"},
                 {"day": 14, "step": "Check in: offer taken?"}),
    "personal_call": ({"day": 0, "step": "Personal call from customer success"},
                      {"day": 7, "step": "Follow-up call"}),
    "satisfaction_survey": ({"day": 0, "step": "Send the satisfaction survey"},
                            {"day": 5, "step": "Call about the answers"}),
    "custom": ({"day": 0, "step": "Do the campaign's action"},),
}  # fmt: skip


class CampaignSelection(models.TextChoices):
    THRESHOLD = "threshold", "Everyone matching the rule, riskiest first"
    VALUE = "value", "By expected value of contacting, within a budget"


class RetentionCampaignQuerySet(models.QuerySet["RetentionCampaign"]):
    def visible_to(self, *, department_id: int | None, is_superuser: bool) -> RetentionCampaignQuerySet:
        """A department sees its own campaigns only; superusers see every department's."""
        return self if is_superuser else self.filter(department_id=department_id)

    def active(self) -> RetentionCampaignQuerySet:
        return self.filter(status=CampaignStatus.ACTIVE)


class RetentionCampaign(models.Model):
    """A department's effort to keep customers at risk: who it targets, what it does, and its control group."""

    department = models.ForeignKey("accounts.Department", on_delete=models.PROTECT, related_name="campaigns")
    name = models.CharField(max_length=200)
    goal = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_campaigns"
    )
    # The target rule, applied to each customer's latest prediction. At least one of the two
    # prediction conditions is required, or a campaign would enrol every scored customer.
    target_risk_levels = models.JSONField(default=list, blank=True, help_text="Risk levels to enrol; empty: any.")
    target_min_probability = models.FloatField(
        null=True, blank=True, help_text="Lowest churn probability to enrol; empty: no minimum."
    )
    target_filters = models.JSONField(
        default=dict,
        blank=True,
        help_text="Customer filters: contract_type, internet_service, payment_method (lists), senior_citizen, "
        "min_tenure_months, max_tenure_months, min_monthly_charges, max_monthly_charges; "
        "risk_increased (the latest prediction raised the level).",
    )
    action = models.CharField(max_length=20, choices=CampaignAction.choices)
    discount_percent = models.DecimalField(
        max_digits=5, decimal_places=2, null=True, blank=True, help_text="The discount offered (discount action)."
    )
    action_details = models.TextField(blank=True, help_text="What staff do or say; required for a custom action.")
    control_share = models.FloatField(default=0.10, help_text="Share of matching customers held out (0 to 0.9).")
    start_date = models.DateField(default=date.today)
    end_date = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT)
    horizon_months = models.PositiveSmallIntegerField(
        default=12, help_text="Months of revenue a kept customer is worth in the effectiveness figures."
    )
    offer_months = models.PositiveSmallIntegerField(
        default=3, help_text="Months an accepted discount is given for, to cost the offers."
    )
    follow_up_days = models.PositiveSmallIntegerField(
        default=7, help_text="Days from enrolment to a target's due date."
    )
    selection = models.CharField(
        max_length=10, choices=CampaignSelection.choices, default=CampaignSelection.THRESHOLD,
        help_text="Whom of the matching customers to enrol.",
    )
    save_rate_prior = models.FloatField(
        null=True, blank=True,
        help_text="Share of would-be churners a contact keeps, assumed until the campaign measures its uplift "
        "(empty: CAMPAIGN_SAVE_RATE_PRIOR).",
    )
    budget_offers = models.PositiveIntegerField(
        null=True, blank=True, help_text="Value selection: at most this many customers contacted."
    )
    budget_money = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True,
        help_text="Value selection: at most this much spent on offers.",
    )
    projection = models.JSONField(
        default=dict, blank=True, help_text="What the last enrolment expected to achieve, to compare with the result."
    )
    playbook = models.JSONField(
        default=list, blank=True,
        help_text='The action as a checklist: [{"day": 0, "step": "Call"}, {"day": 2, "step": "Offer email"}]; '
        "empty: the action's default playbook.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    enrolled_at = models.DateTimeField(null=True, blank=True, help_text="Last enrolment.")
    closed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RetentionCampaignQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(control_share__gte=0, control_share__lte=0.9),
                name="campaign_control_share_range",
                violation_error_message="The control share must be between 0 and 0.9.",
            ),
            models.CheckConstraint(
                condition=models.Q(target_min_probability__isnull=True)
                | models.Q(target_min_probability__gte=0, target_min_probability__lte=1),
                name="campaign_min_probability_range",
                violation_error_message="The minimum probability must be between 0 and 1.",
            ),
            models.CheckConstraint(
                condition=models.Q(discount_percent__isnull=True)
                | models.Q(discount_percent__gt=0, discount_percent__lte=100),
                name="campaign_discount_range",
                violation_error_message="The discount must be above 0 and at most 100 percent.",
            ),
            models.CheckConstraint(
                condition=models.Q(save_rate_prior__isnull=True)
                | models.Q(save_rate_prior__gte=0, save_rate_prior__lte=1),
                name="campaign_save_rate_prior_range",
                violation_error_message="The save rate must be between 0 and 1.",
            ),
            models.CheckConstraint(
                condition=models.Q(end_date__isnull=True) | models.Q(end_date__gte=models.F("start_date")),
                name="campaign_end_after_start",
                violation_error_message="The end date cannot be before the start date.",
            ),
        ]
        indexes = [models.Index(fields=["department", "status"], name="campaign_department_status_idx")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_open(self) -> bool:
        return self.status != CampaignStatus.CLOSED

    def rule_summary(self) -> str:
        parts = []
        if self.target_risk_levels:
            parts.append("risk " + " or ".join(self.target_risk_levels))
        if self.target_min_probability is not None:
            parts.append(f"probability at least {self.target_min_probability:.0%}")
        for name, value in sorted(self.target_filters.items()):
            label = name.replace("_", " ")
            if isinstance(value, list):
                parts.append(f"{label} {' or '.join(map(str, value))}")
            elif isinstance(value, bool):
                parts.append(label if value else f"not {label}")
            else:
                parts.append(f"{label} {value}")
        return ", ".join(parts) or "no rule"

    def playbook_steps(self) -> list[dict[str, object]]:
        """The campaign's checklist, or its action's default one."""
        return list(self.playbook) or [dict(step) for step in DEFAULT_PLAYBOOKS.get(self.action, ())]

    def action_summary(self) -> str:
        if self.action == CampaignAction.DISCOUNT and self.discount_percent is not None:
            return f"{self.discount_percent.normalize():f}% discount for {self.offer_months} months"
        return self.get_action_display()


class TargetGroup(models.TextChoices):
    TREATMENT = "treatment", "Treatment"
    CONTROL = "control", "Control"


class FollowUpStatus(models.TextChoices):
    TO_DO = "to_do", "To do"
    CONTACTED = "contacted", "Contacted"
    OFFER_ACCEPTED = "offer_accepted", "Offer accepted"
    OFFER_DECLINED = "offer_declined", "Offer declined"
    UNREACHABLE = "unreachable", "Unreachable"
    DO_NOT_CONTACT = "do_not_contact", "Do not contact"


OPEN_FOLLOW_UP_STATUSES = (FollowUpStatus.TO_DO, FollowUpStatus.CONTACTED)


class TargetOutcome(models.TextChoices):
    RETAINED = "retained", "Retained"
    CHURNED = "churned", "Churned"
    UNKNOWN = "unknown", "Unknown"


class OutcomeSource(models.TextChoices):
    NONE = "", "None"
    STAFF = "staff", "Staff"
    RECORDED = "recorded", "Recorded outcome"


class CampaignTarget(models.Model):
    """One customer enrolled in a campaign: its group, who follows it up, and what became of it."""

    campaign = models.ForeignKey(RetentionCampaign, on_delete=models.CASCADE, related_name="targets")
    # Null once the customer is erased: the anonymised row keeps the campaign's counts right.
    customer = models.ForeignKey(
        "customers.Customer", null=True, blank=True, on_delete=models.SET_NULL, related_name="campaign_targets"
    )
    group = models.CharField(max_length=10, choices=TargetGroup.choices)
    # Mirrors campaign.status == active so that the database itself can refuse a customer in two
    # active campaigns (a partial unique index), even when two enrolments run at the same time.
    in_active_campaign = models.BooleanField(default=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="campaign_targets"
    )
    follow_up_status = models.CharField(max_length=16, choices=FollowUpStatus.choices, default=FollowUpStatus.TO_DO)
    due_date = models.DateField(null=True, blank=True)
    contacted_at = models.DateTimeField(null=True, blank=True, help_text="When the follow-up first left 'to do'.")
    outcome = models.CharField(max_length=10, choices=TargetOutcome.choices, default=TargetOutcome.UNKNOWN)
    outcome_source = models.CharField(
        max_length=10, choices=OutcomeSource.choices, default=OutcomeSource.NONE, blank=True
    )
    outcome_at = models.DateTimeField(null=True, blank=True)
    # The prediction that qualified the customer, and a copy of what it said: predictions can be
    # pruned, and the campaign's measurement must not change when they are. No database
    # constraint: the predictions table is partitioned on PostgreSQL and a foreign key could
    # only reference its whole primary key (id, created_at). Retention clears the link through
    # predictions_expiring (campaigns.receivers) before a partition or a row goes.
    prediction = models.ForeignKey(
        "predictions.Prediction", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        db_constraint=False,
    )
    qualifying_probability = models.FloatField()
    qualifying_risk_level = models.CharField(max_length=8, choices=RiskLevel.choices)
    # Frozen at enrolment so that revenue kept and offer cost use the bill the customer had then.
    monthly_charges = models.FloatField()
    steps_done = models.PositiveSmallIntegerField(default=0, help_text="Playbook steps ticked off, in order.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["due_date", "-qualifying_probability", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "customer"],
                name="campaigntarget_unique_customer",
                violation_error_message="This customer is already enrolled in this campaign.",
            ),
            models.UniqueConstraint(
                fields=["customer"],
                condition=models.Q(in_active_campaign=True),
                name="campaigntarget_one_active_campaign",
                violation_error_message="This customer is already in another active campaign.",
            ),
            models.CheckConstraint(
                condition=models.Q(qualifying_probability__gte=0, qualifying_probability__lte=1),
                name="campaigntarget_probability_range",
                violation_error_message="The qualifying probability must be between 0 and 1.",
            ),
        ]
        indexes = [
            # The work lists' default order (due date, then riskiest), so a page of 25 is read off
            # the index instead of joining and sorting every target (67 ms -> ~2 ms at 10,000).
            models.Index(
                fields=["assignee", "due_date", "-qualifying_probability", "id"], name="target_assignee_due_idx"
            ),
            models.Index(
                fields=["campaign", "due_date", "-qualifying_probability", "id"], name="target_campaign_due_idx"
            ),
            models.Index(fields=["campaign", "group", "outcome"], name="target_campaign_group_idx"),
            models.Index(fields=["campaign", "follow_up_status"], name="target_campaign_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} in campaign {self.campaign_id} ({self.group})"

    def next_step(self) -> dict[str, object] | None:
        """The playbook step to do next, with its due date, or None when all are done (or held out)."""
        if self.is_control:
            return None
        steps = self.campaign.playbook_steps()
        if self.steps_done >= len(steps):
            return None
        step = steps[self.steps_done]
        due = timezone.localdate(self.created_at) + timedelta(days=int(step["day"])) if self.created_at else None
        return {"number": self.steps_done, "of": len(steps), "step": step["step"], "day": step["day"], "due": due}

    @property
    def is_control(self) -> bool:
        return self.group == TargetGroup.CONTROL

    @property
    def is_open(self) -> bool:
        return self.follow_up_status in OPEN_FOLLOW_UP_STATUSES


class TargetNote(models.Model):
    """A note staff wrote on a follow-up, with its author and time. Never edited."""

    target = models.ForeignKey(CampaignTarget, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_label = models.CharField(
        max_length=200, help_text="The author as they were at the time, kept after deletes."
    )
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"note by {self.author_label} on target {self.target_id}"


class SavedView(models.Model):
    """A staff member's named filter and sort of the follow-up list, kept as its query string."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_views")
    name = models.CharField(max_length=80)
    query = models.CharField(max_length=500, help_text="The follow-up list's query string (filters and sort).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "name"], name="saved_view_user_name_unique",
                violation_error_message="You already have a view with this name.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.user_id})"


class DigestPreference(models.Model):
    """Whether a staff member gets the daily digest e-mail, and when the last one went out."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="digest_preference")
    daily_digest = models.BooleanField(default=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["user_id"]

    def __str__(self) -> str:
        return f"digest for {self.user_id}: {'on' if self.daily_digest else 'off'}"
