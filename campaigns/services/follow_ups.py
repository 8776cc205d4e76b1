"""Follow-up work on targets: updates, assignment, playbook steps, bulk changes, saved views."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts.services import Actor, audit_record
from campaigns.models import (
    CampaignTarget,
    FollowUpStatus,
    OutcomeSource,
    SavedView,
    TargetGroup,
    TargetNote,
    TargetOutcome,
)
from campaigns.selectors.access import assignable_users
from campaigns.services.common import (
    ENROL_BATCH_SIZE,
    CampaignError,
    NotVisible,
    _audit_many,
    _require_visible,
)

NOTE_MAX_LENGTH = 5000


UNSET: Any = object()


def _user_label(user: Any) -> str:
    return user.get_username() if user is not None else ""


@transaction.atomic
def campaign_target_update(
    *,
    target_id: int,
    actor: Actor,
    follow_up_status: str | None = None,
    assignee_id: int | None = UNSET,
    due_date: date | None = UNSET,
    outcome: str | None = None,
    note: str = "",
) -> tuple[CampaignTarget, dict[str, list[Any]]]:
    """Change a follow-up in one step (status, assignee, due date, outcome, a new note).

    Returns the target and the changes made ({field: [before, after]}), which go into one audit
    entry. Control-group customers are held out: they get no assignee and no contact, though
    their outcome can be recorded.
    """
    target = (
        CampaignTarget.objects.select_for_update(of=("self",))
        .select_related("campaign", "customer", "assignee")
        .filter(pk=target_id)
        .first()
    )
    if target is None:
        raise NotVisible(target_id)
    _require_visible(actor, target.campaign.department_id)
    errors: dict[str, list[str]] = {}
    changes: dict[str, list[Any]] = {}
    now = timezone.now()

    if follow_up_status is not None and follow_up_status != target.follow_up_status:
        if follow_up_status not in FollowUpStatus.values:
            errors["follow_up_status"] = [f"Must be one of {', '.join(FollowUpStatus.values)}."]
        elif target.is_control:
            errors["follow_up_status"] = ["Control-group customers are held out and are not contacted."]
        else:
            changes["follow_up_status"] = [target.follow_up_status, follow_up_status]
            target.follow_up_status = follow_up_status
            if follow_up_status != FollowUpStatus.TO_DO and target.contacted_at is None:
                target.contacted_at = now

    if assignee_id is not UNSET and assignee_id != target.assignee_id:
        if target.is_control and assignee_id is not None:
            errors["assignee"] = ["Control-group customers are held out and get no assignee."]
        elif assignee_id is not None:
            user = assignable_users(department_id=target.campaign.department_id).filter(pk=assignee_id).first()
            if user is None:
                errors["assignee"] = ["Must be an active staff member of the campaign's department."]
            else:
                changes["assignee"] = [_user_label(target.assignee), user.get_username()]
                target.assignee = user
        else:
            changes["assignee"] = [_user_label(target.assignee), ""]
            target.assignee = None

    if due_date is not UNSET and due_date != target.due_date:
        changes["due_date"] = [
            target.due_date.isoformat() if target.due_date else None,
            due_date.isoformat() if due_date else None,
        ]
        target.due_date = due_date

    if outcome is not None and outcome != target.outcome:
        if outcome not in TargetOutcome.values:
            errors["outcome"] = [f"Must be one of {', '.join(TargetOutcome.values)}."]
        else:
            changes["outcome"] = [target.outcome, outcome]
            target.outcome = outcome
            known = outcome != TargetOutcome.UNKNOWN
            target.outcome_source = OutcomeSource.STAFF if known else OutcomeSource.NONE
            target.outcome_at = now if known else None

    note = (note or "").strip()
    if len(note) > NOTE_MAX_LENGTH:
        errors["note"] = [f"At most {NOTE_MAX_LENGTH} characters."]
    if errors:
        raise CampaignError(errors)
    if not changes and not note:
        return target, {}
    if changes:
        target.save()
    if note:
        author = actor.user if actor.user is not None and actor.user.pk else None
        TargetNote.objects.create(target=target, author=author, author_label=actor.label[:200], text=note)
    audit_record(
        actor=actor,
        action="campaign_target.update" if changes else "campaign_target.note",
        obj=target,
        department_id=target.campaign.department_id,
        details={
            "campaign_id": target.campaign_id,
            "customer_id": target.customer.customer_id if target.customer else None,
            "changes": changes,
            "note": note[:500] if note else None,
        },
    )
    return target, changes


@transaction.atomic
def campaign_targets_assign(*, target_ids: Iterable[int], assignee_id: int | None, actor: Actor) -> int:
    """Give many treatment follow-ups to one staff member (or unassign them); returns how many changed.

    The assignee must be staff in each target's department; control targets are left alone.
    """
    # Locked in primary-key order so that two bulk assignments cannot deadlock each other.
    targets = list(
        CampaignTarget.objects.select_for_update(of=("self",))
        .select_related("campaign", "assignee")
        .filter(pk__in=list(target_ids), group=TargetGroup.TREATMENT)
        .order_by("pk")
    )
    for target in targets:
        _require_visible(actor, target.campaign.department_id)
    user = None
    if assignee_id is not None:
        user = get_user_model().objects.filter(pk=assignee_id).first()
        departments = {t.campaign.department_id for t in targets}
        for department_id in departments:
            if not assignable_users(department_id=department_id).filter(pk=assignee_id).exists():
                raise CampaignError(
                    {"assignee": ["Must be an active staff member of every selected target's department."]}
                )
    changed: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    ids = []
    for target in targets:
        if target.assignee_id == assignee_id:
            continue
        ids.append(target.pk)
        changed.setdefault(target.campaign.department_id, []).append(
            (
                target.pk,
                {
                    "campaign_id": target.campaign_id,
                    "changes": {"assignee": [_user_label(target.assignee), _user_label(user)]},
                },
            )
        )
    if ids:
        CampaignTarget.objects.filter(pk__in=ids).update(assignee_id=assignee_id, updated_at=timezone.now())
    for department_id, entries in changed.items():
        _audit_many(actor=actor, action="campaign_target.assign", department_id=department_id, entries=entries)
    return len(ids)


@transaction.atomic
def campaign_target_step_done(*, target_id: int, actor: Actor, step: int) -> CampaignTarget:
    """Tick off the follow-up's next playbook step (given by its number, so a double click ticks once).

    The first step done marks the customer contacted; the due date moves to the next step's day.
    """
    target = (
        CampaignTarget.objects.select_for_update(of=("self",)).select_related("campaign", "customer")
        .filter(pk=target_id).first()
    )  # fmt: skip
    if target is None:
        raise NotVisible(target_id)
    _require_visible(actor, target.campaign.department_id)
    if target.is_control:
        raise CampaignError({"step": ["Control-group customers are held out and are not contacted."]})
    steps = target.campaign.playbook_steps()
    if step != target.steps_done:
        return target  # already ticked (a repeated click) or out of order: nothing changes
    if step >= len(steps):
        raise CampaignError({"step": ["Every step of this playbook is done."]})
    now = timezone.now()
    before = target.follow_up_status
    target.steps_done = step + 1
    if target.follow_up_status == FollowUpStatus.TO_DO:
        target.follow_up_status = FollowUpStatus.CONTACTED
    if target.contacted_at is None:
        target.contacted_at = now
    if target.steps_done < len(steps):
        target.due_date = timezone.localdate(target.created_at) + timedelta(days=int(steps[target.steps_done]["day"]))
    target.save(update_fields=["steps_done", "follow_up_status", "contacted_at", "due_date", "updated_at"])
    audit_record(
        actor=actor,
        action="campaign_target.step_done",
        obj=target,
        department_id=target.campaign.department_id,
        details={
            "campaign_id": target.campaign_id,
            "customer_id": target.customer.customer_id if target.customer else None,
            "step": steps[step]["step"],
            "changes": {"follow_up_status": [before, target.follow_up_status]}
            if before != target.follow_up_status
            else {},
        },
    )
    return target


@dataclass(frozen=True)
class BulkChange:
    selected: int
    changed: int
    held_out: int  # control-group targets left alone (never assigned nor contacted)


@transaction.atomic
def campaign_targets_bulk_change(
    *,
    target_ids: Iterable[int],
    actor: Actor,
    assignee_id: int | None = UNSET,
    follow_up_status: str | None = None,
    due_date: date | None = UNSET,
) -> BulkChange:
    """Assign, set the status of, or reschedule many follow-ups at once, each change audited.

    The rules are the one-step form's: control-group targets are held out, the assignee must be
    staff of each target's department, a status other than "to do" marks the customer contacted.
    """
    ids = list(dict.fromkeys(target_ids))
    if follow_up_status is not None and follow_up_status not in FollowUpStatus.values:
        raise CampaignError({"follow_up_status": [f"Must be one of {', '.join(FollowUpStatus.values)}."]})
    if follow_up_status == FollowUpStatus.DO_NOT_CONTACT:
        raise CampaignError({"follow_up_status": ["Do not contact is for the control group only."]})
    if assignee_id is UNSET and follow_up_status is None and due_date is UNSET:
        raise CampaignError({"action": ["Choose what to change: assignee, status or due date."]})
    # Locked in primary-key order so that two bulk changes cannot deadlock each other.
    targets = list(
        CampaignTarget.objects.select_for_update(of=("self",))
        .select_related("campaign")
        .filter(pk__in=ids)
        .order_by("pk")
    )
    for target in targets:
        _require_visible(actor, target.campaign.department_id)
    treated = [t for t in targets if t.group == TargetGroup.TREATMENT]
    changed_ids: set[int] = set()
    if assignee_id is not UNSET:
        before = {t.pk: t.assignee_id for t in treated}
        campaign_targets_assign(target_ids=[t.pk for t in treated], assignee_id=assignee_id, actor=actor)
        changed_ids |= {pk for pk, old in before.items() if old != assignee_id}
    now = timezone.now()
    entries: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    dirty = []
    for target in treated:
        changes: dict[str, list[Any]] = {}
        if follow_up_status is not None and follow_up_status != target.follow_up_status:
            changes["follow_up_status"] = [target.follow_up_status, follow_up_status]
            target.follow_up_status = follow_up_status
            if follow_up_status != FollowUpStatus.TO_DO and target.contacted_at is None:
                target.contacted_at = now
        if due_date is not UNSET and due_date != target.due_date:
            changes["due_date"] = [
                target.due_date.isoformat() if target.due_date else None,
                due_date.isoformat() if due_date else None,
            ]
            target.due_date = due_date
        if changes:
            target.updated_at = now
            dirty.append(target)
            changed_ids.add(target.pk)
            entries.setdefault(target.campaign.department_id, []).append(
                (target.pk, {"campaign_id": target.campaign_id, "changes": changes, "bulk": True})
            )
    if dirty:
        CampaignTarget.objects.bulk_update(
            dirty, ["follow_up_status", "contacted_at", "due_date", "updated_at"], batch_size=ENROL_BATCH_SIZE
        )
    for department_id, rows in entries.items():
        _audit_many(actor=actor, action="campaign_target.bulk_update", department_id=department_id, entries=rows)
    return BulkChange(selected=len(targets), changed=len(changed_ids), held_out=len(targets) - len(treated))


@transaction.atomic
def saved_view_save(*, user: Any, name: str, query: str, actor: Actor) -> SavedView:
    """Keep (or replace) a named filter and sort of the follow-up list for this user."""
    name = (name or "").strip()
    if not name:
        raise CampaignError({"name": ["A view needs a name."]})
    if len(name) > 80:
        raise CampaignError({"name": ["At most 80 characters."]})
    if len(query) > 500:
        raise CampaignError({"query": ["Too many filters to keep (500 characters at most)."]})
    view, _ = SavedView.objects.update_or_create(user=user, name=name, defaults={"query": query})
    audit_record(actor=actor, action="saved_view.save", obj=view, details={"name": name, "query": query})
    return view


@transaction.atomic
def saved_view_delete(*, user: Any, view_id: int, actor: Actor) -> bool:
    view = SavedView.objects.filter(user=user, pk=view_id).first()
    if view is None:
        return False
    audit_record(actor=actor, action="saved_view.delete", obj=view, details={"name": view.name})
    view.delete()
    return True
