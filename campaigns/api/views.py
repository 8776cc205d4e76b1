from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Prefetch
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from accounts.context import actor_for_request
from accounts.models import Department
from campaigns.api.filters import CampaignTargetFilter
from campaigns.api.serializers import (
    CampaignCreateSerializer,
    CampaignSerializer,
    CampaignTargetSerializer,
    CampaignTargetUpdateSerializer,
    EffectivenessSerializer,
    EnrolResultSerializer,
    EnrolSerializer,
    PreviewSerializer,
    effectiveness_as_dict,
)
from campaigns.exports import CsvRenderer, csv_response, targets_csv_rows
from campaigns.models import TargetNote
from campaigns.selectors.access import campaign_list_with_counts, campaign_target_list
from campaigns.selectors.audience import campaign_audience, projection_as_dict
from campaigns.selectors.effectiveness import campaign_effectiveness
from campaigns.services.common import NotVisible
from campaigns.services.follow_ups import campaign_target_update
from campaigns.services.lifecycle import campaign_close, campaign_create, campaign_enrol
from campaigns.services.spec import CampaignSpec
from churn_infra.api import JsonErrorsMixin

WRITE_SCOPES = {"GET": "customers:read", "POST": "campaigns:write", "PATCH": "campaigns:write"}


def _user_ids(usernames: list[str], field: str) -> list[int]:
    found = dict(get_user_model().objects.filter(username__in=usernames).values_list("username", "pk"))
    missing = [name for name in usernames if name not in found]
    if missing:
        raise ValidationError({field: [f"No user named {', '.join(missing)}."]})
    return [found[name] for name in usernames]


def _with_notes(qs: Any) -> Any:
    return qs.prefetch_related(Prefetch("notes", queryset=TargetNote.objects.order_by("-created_at", "-pk")))


class CampaignViewSet(JsonErrorsMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Retention campaigns of the caller's department (others are 404), newest first."""

    serializer_class = CampaignSerializer
    required_scopes = WRITE_SCOPES

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return campaign_list_with_counts(actor=actor_for_request(self.request))

    @extend_schema(request=CampaignCreateSerializer, responses={201: CampaignSerializer})
    def create(self, request: Request) -> Response:
        body = CampaignCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        actor = actor_for_request(request)
        department_id = None
        department_name = data.pop("department")
        if department_name is not None:
            if not actor.is_superuser:
                raise ValidationError({"department": ["Only superusers may create a campaign for a department."]})
            department_id = Department.objects.filter(name=department_name).values_list("pk", flat=True).first()
            if department_id is None:
                raise ValidationError({"department": [f"No department named {department_name!r}."]})
        owner = data.pop("owner")
        data["owner_id"] = _user_ids([owner], "owner")[0] if owner else None
        campaign = campaign_create(actor=actor, spec=CampaignSpec(**data), department_id=department_id)
        campaign = self.get_queryset().get(pk=campaign.pk)
        return Response(CampaignSerializer(campaign).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=EnrolSerializer, responses=EnrolResultSerializer)
    @action(detail=True, methods=["post"])
    def enrol(self, request: Request, pk: str | None = None) -> Response:
        """Enrol the customers matching the rule: skips those in another active campaign, holds out the control."""
        campaign = self.get_object()
        body = EnrolSerializer(data=request.data if request.data else {})
        body.is_valid(raise_exception=True)
        assignees = _user_ids(body.validated_data["assignees"], "assignees")
        try:
            result = campaign_enrol(
                campaign_id=campaign.pk,
                actor=actor_for_request(request),
                assignee_ids=assignees,
                limit=body.validated_data["limit"],
            )
        except NotVisible:
            raise Http404 from None
        campaign = self.get_queryset().get(pk=campaign.pk)
        return Response({**result.as_dict(), "campaign": CampaignSerializer(campaign).data})

    @extend_schema(request=EnrolSerializer, responses=PreviewSerializer)
    @action(detail=True, methods=["post"])
    def preview(self, request: Request, pk: str | None = None) -> Response:
        """What enrolling now would take and is expected to achieve; nothing is written.

        The same selection as ``enrol`` (the rule, or expected value within the budget), with the
        save rate the campaign measured, or else its prior, named in ``save_rate_source``.
        """
        campaign = self.get_object()
        body = EnrolSerializer(data=request.data if request.data else {})
        body.is_valid(raise_exception=True)
        audience = campaign_audience(campaign=campaign, limit=body.validated_data["limit"])
        return Response(projection_as_dict(audience))

    @extend_schema(request=None, responses=CampaignSerializer)
    @action(detail=True, methods=["post"])
    def close(self, request: Request, pk: str | None = None) -> Response:
        """Close the campaign: no more enrolment; its customers may join another campaign."""
        campaign = self.get_object()
        try:
            campaign_close(campaign_id=campaign.pk, actor=actor_for_request(request))
        except NotVisible:
            raise Http404 from None
        return Response(CampaignSerializer(self.get_queryset().get(pk=campaign.pk)).data)

    @extend_schema(
        responses={(200, "application/json"): CampaignTargetSerializer(many=True), (200, "text/csv"): str},
        parameters=[OpenApiParameter("format", str, enum=["json", "csv"], description="csv: download them all.")],
    )
    @action(detail=True, methods=["get"], renderer_classes=[*api_settings.DEFAULT_RENDERER_CLASSES, CsvRenderer])
    def targets(self, request: Request, pk: str | None = None) -> Any:
        """The campaign's targets (filter by group, follow_up_status, outcome, assignee, unassigned, customer_id).

        ``?format=csv`` downloads every matching target (not one page), cells guarded against formulas.
        """
        campaign = self.get_object()
        qs = campaign_target_list(actor=actor_for_request(request)).filter(campaign=campaign)
        filtered = CampaignTargetFilter(request.query_params, queryset=qs)
        if not filtered.is_valid():
            raise ValidationError(dict(filtered.errors))
        if request.accepted_renderer.format == "csv":
            return csv_response(targets_csv_rows(filtered.qs), f"campaign-{campaign.pk}-targets.csv")
        page = self.paginate_queryset(_with_notes(filtered.qs))
        return self.get_paginated_response(CampaignTargetSerializer(page, many=True).data)

    @extend_schema(responses=EffectivenessSerializer)
    @action(detail=True, methods=["get"])
    def effectiveness(self, request: Request, pk: str | None = None) -> Response:
        """Retention in treatment and control, uplift with a 95% interval, customers saved, revenue and cost."""
        campaign = self.get_object()
        return Response(effectiveness_as_dict(campaign_effectiveness(campaign=campaign)))


class CampaignTargetViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """One follow-up; PATCH changes status, assignee, due date, outcome and adds a note in one step."""

    serializer_class = CampaignTargetSerializer
    required_scopes = WRITE_SCOPES
    http_method_names = ["get", "patch", "head", "options"]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return _with_notes(campaign_target_list(actor=actor_for_request(self.request)))

    @extend_schema(request=CampaignTargetUpdateSerializer, responses=CampaignTargetSerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        target = self.get_object()
        body = CampaignTargetUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        if "assignee" in data:
            username = data.pop("assignee")
            data["assignee_id"] = _user_ids([username], "assignee")[0] if username else None
        try:
            campaign_target_update(target_id=target.pk, actor=actor_for_request(request), **data)
        except NotVisible:
            raise Http404 from None
        return Response(CampaignTargetSerializer(self.get_queryset().get(pk=target.pk)).data)
