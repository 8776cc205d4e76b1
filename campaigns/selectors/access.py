"""Who may do what, and the campaigns and targets an actor may see."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, Q, QuerySet

from accounts.services import STAFF_GROUP, Actor
from campaigns.models import (
    CampaignTarget,
    RetentionCampaign,
    TargetGroup,
)


def user_is_staff_member(user: Any) -> bool:
    """Staff pages are for active users who are Django staff or in the "staff" group."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.is_staff or user.is_superuser:
        return True
    return user.groups.filter(name=STAFF_GROUP).exists()


def assignable_users(*, department_id: int) -> QuerySet[Any]:
    """Staff members of a department: the people a follow-up can be given to."""
    return (
        get_user_model()
        .objects.filter(is_active=True, membership__department_id=department_id)
        .filter(Q(is_staff=True) | Q(is_superuser=True) | Q(groups__name=STAFF_GROUP))
        .distinct()
        .order_by("username")
    )


def staff_user_ids() -> QuerySet[Any]:
    return (
        get_user_model()
        .objects.filter(Q(is_staff=True) | Q(is_superuser=True) | Q(groups__name=STAFF_GROUP))
        .values("pk")
    )


def staff_by_department(department_ids: set[int]) -> dict[int, list[tuple[int, str]]]:
    """Assignable staff (id, username) per department, in one query."""
    rows = (
        get_user_model()
        .objects.filter(is_active=True, membership__department_id__in=department_ids, pk__in=staff_user_ids())
        .values_list("membership__department_id", "pk", "username")
        .order_by("username")
    )
    out: dict[int, list[tuple[int, str]]] = {pk: [] for pk in department_ids}
    for department_id, pk, username in rows:
        out[department_id].append((pk, username))
    return out


def campaign_list(*, actor: Actor) -> QuerySet[RetentionCampaign]:
    return RetentionCampaign.objects.visible_to(
        department_id=actor.department_id, is_superuser=actor.is_superuser
    ).select_related("department", "owner")


def campaign_list_with_counts(*, actor: Actor) -> QuerySet[RetentionCampaign]:
    # Explicit order: Meta.ordering does not apply to a grouped (annotated) query.
    return (
        campaign_list(actor=actor)
        .annotate(
            target_count=Count("targets"),
            treatment_count=Count("targets", filter=Q(targets__group=TargetGroup.TREATMENT)),
            control_count=Count("targets", filter=Q(targets__group=TargetGroup.CONTROL)),
        )
        .order_by("-created_at", "-pk")
    )


def campaign_get(*, actor: Actor, campaign_id: int) -> RetentionCampaign | None:
    return campaign_list(actor=actor).filter(pk=campaign_id).first()


def campaign_target_list(*, actor: Actor) -> QuerySet[CampaignTarget]:
    qs = CampaignTarget.objects.select_related("campaign", "customer", "assignee")
    return qs if actor.is_superuser else qs.filter(campaign__department_id=actor.department_id)


def campaign_target_get(*, actor: Actor, target_id: int) -> CampaignTarget | None:
    return campaign_target_list(actor=actor).filter(pk=target_id).first()
