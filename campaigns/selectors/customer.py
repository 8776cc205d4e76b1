"""One customer as the staff pages show it: overview and timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Prefetch

from accounts.models import AuditLogEntry
from accounts.services import Actor
from campaigns.models import (
    CampaignTarget,
    TargetNote,
    TargetOutcome,
)
from campaigns.selectors.access import (
    campaign_target_list,
)
from customers.models import Customer, CustomerEvent, EventStatus, EventType, Outcome
from predictions.models import Prediction, RiskTierAction


@dataclass(frozen=True)
class CustomerOverview:
    customer: Customer
    predictions: list[Prediction]
    latest: Prediction | None
    tier_action: RiskTierAction | None
    targets: list[CampaignTarget]
    notes: list[TargetNote]
    outcomes: list[Outcome]


def customer_overview(*, actor: Actor, customer_id: str, history: int = 20) -> CustomerOverview | None:
    customer = Customer.objects.filter(customer_id=customer_id).first()
    if customer is None:
        return None
    predictions = list(
        Prediction.objects.filter(customer_id=customer_id)
        .select_related("model_version")
        .order_by("-created_at", "-pk")[:history]
    )
    latest = predictions[0] if predictions else None
    tier_action = RiskTierAction.objects.filter(risk_level=latest.risk_level).first() if latest else None
    targets = list(
        campaign_target_list(actor=actor)
        .filter(customer=customer)
        .prefetch_related(Prefetch("notes", queryset=TargetNote.objects.order_by("-created_at", "-pk")))
        .order_by("-created_at", "-pk")
    )
    notes = sorted((n for t in targets for n in t.notes.all()), key=lambda n: (n.created_at, n.pk), reverse=True)
    outcomes = list(customer.outcomes.order_by("-observed_at", "-pk")[:10])
    return CustomerOverview(customer, predictions, latest, tier_action, targets, notes, outcomes)


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # prediction, event, outcome, campaign, note
    title: str
    detail: str = ""
    css: str = ""


TIMELINE_EVENTS = 50


def customer_timeline(*, actor: Actor, overview: CustomerOverview) -> list[TimelineEntry]:
    """Everything that happened to a customer, newest first: scores, stream events, outcomes, campaign steps, notes.

    Built from what the overview already loaded plus two queries (events, audited campaign steps), so
    the page stays at a fixed number of queries.
    """
    event_labels = dict(EventType.choices)
    events = CustomerEvent.objects.filter(customer=overview.customer, status=EventStatus.APPLIED).order_by(
        "-created_at", "-pk"
    )[:TIMELINE_EVENTS]
    targets = {t.pk: t for t in overview.targets}
    steps = AuditLogEntry.objects.filter(
        object_type="campaigns.campaigntarget",
        object_id__in=[str(pk) for pk in targets],
        action__in=("campaign_target.update", "campaign_target.bulk_update", "campaign_target.assign"),
    ).order_by("-created_at", "-pk")[:TIMELINE_EVENTS]
    entries = [
        *(
            TimelineEntry(p.created_at, "prediction", f"Scored {p.churn_probability:.0%} ({p.risk_level})",
                          f"model {p.model_version.version}", p.risk_level)
            for p in overview.predictions
        ),
        *(
            TimelineEntry(e.occurred_at or e.created_at, "event", event_labels.get(e.event_type, e.event_type),
                          _event_words(e.data))
            for e in events
        ),
        *(
            TimelineEntry(o.observed_at, "outcome", "Churned" if o.churned else "Stayed",
                          f"recorded from {o.source}" if o.source else "", "churned" if o.churned else "retained")
            for o in overview.outcomes
        ),
        *(
            TimelineEntry(t.created_at, "campaign", f"Enrolled in {t.campaign.name}",
                          "control group (held out)" if t.is_control else "treatment")
            for t in overview.targets
        ),
        *(
            TimelineEntry(t.outcome_at, "campaign", f"{t.campaign.name}: {t.get_outcome_display()}",
                          f"from {t.get_outcome_source_display()}")
            for t in overview.targets
            if t.outcome_at is not None and t.outcome != TargetOutcome.UNKNOWN
        ),
        *(entry for step in steps if (entry := _step_entry(step, targets)) is not None),
        *(TimelineEntry(n.created_at, "note", f"Note by {n.author_label}", n.text) for n in overview.notes),
    ]  # fmt: skip
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries


def _step_entry(step: AuditLogEntry, targets: dict[int, CampaignTarget]) -> TimelineEntry | None:
    changes = (step.details or {}).get("changes") or {}
    words = "; ".join(
        f"{name.replace('_', ' ')} {before or '—'} → {after or '—'}" for name, (before, after) in changes.items()
    )
    if not words:
        return None
    target = targets.get(int(step.object_id))
    campaign = target.campaign.name if target else "Campaign"
    detail = f"{words} (by {step.actor_label})"
    return TimelineEntry(step.created_at, "campaign", f"{campaign}: follow-up changed", detail)


def _event_words(data: dict[str, Any]) -> str:
    return ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in list((data or {}).items())[:6])
