from __future__ import annotations

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.context import actor_for_request
from modelregistry.api.serializers import (
    ABTestReportSerializer,
    ABTestStartSerializer,
    ABTestStopSerializer,
    ModelVersionDetailSerializer,
    ModelVersionSerializer,
    PromoteSerializer,
    ReasonSerializer,
    TrainRequestSerializer,
)
from modelregistry.models import ABTest, ModelEvent, ModelStatus, ModelVersion
from modelregistry.services import (
    PromotionRefused,
    ab_test_report,
    ab_test_start,
    ab_test_stop,
    model_promote,
    model_rollback,
    model_version_set_status,
)


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "The request conflicts with the registry's state."


class ModelVersionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The model registry: every trained version with metrics and status; operators promote and roll back."""

    lookup_field = "version"
    lookup_value_regex = r"[A-Za-z0-9_.:\-]+"

    def required_scope(self, request: Request) -> str:
        return "customers:read" if request.method == "GET" else "models:manage"

    def get_queryset(self):  # type: ignore[no-untyped-def]
        qs = ModelVersion.objects.select_related("previous_active")
        if self.action == "retrieve":
            qs = qs.prefetch_related(Prefetch("events", queryset=ModelEvent.objects.order_by("-created_at", "-pk")))
        status_filter = self.request.query_params.get("status")
        return qs.filter(status=status_filter) if status_filter else qs

    def get_serializer_class(self):  # type: ignore[no-untyped-def]
        return ModelVersionDetailSerializer if self.action == "retrieve" else ModelVersionSerializer

    @extend_schema(request=PromoteSerializer, responses=ModelVersionSerializer)
    @action(detail=True, methods=["post"])
    def promote(self, request: Request, version: str | None = None) -> Response:
        target = self.get_object()
        body = PromoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            promoted = model_promote(version=target.version, actor=actor_for_request(request), **body.validated_data)
        except PromotionRefused as exc:
            raise Conflict(str(exc)) from None
        return Response(ModelVersionSerializer(promoted).data)

    @extend_schema(request=ReasonSerializer, responses=ModelVersionSerializer)
    @action(detail=False, methods=["post"])
    def rollback(self, request: Request) -> Response:
        body = ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            restored = model_rollback(actor=actor_for_request(request), reason=body.validated_data["reason"])
        except PromotionRefused as exc:
            raise Conflict(str(exc)) from None
        return Response(ModelVersionSerializer(restored).data)

    @extend_schema(request=ReasonSerializer, responses=ModelVersionSerializer)
    @action(detail=True, methods=["post"])
    def deprecate(self, request: Request, version: str | None = None) -> Response:
        target = self.get_object()
        body = ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            row = model_version_set_status(
                version=target.version,
                status=ModelStatus.DEPRECATED,
                actor=actor_for_request(request),
                reason=body.validated_data["reason"],
            )
        except PromotionRefused as exc:
            raise Conflict(str(exc)) from None
        return Response(ModelVersionSerializer(row).data)

    @extend_schema(request=ABTestStartSerializer, responses={201: ABTestReportSerializer})
    @action(detail=True, methods=["post"], url_path="ab-test")
    def start_ab_test(self, request: Request, version: str | None = None) -> Response:
        """Let this version score a share of customers (by customer_id) next to the active model."""
        target = self.get_object()
        body = ABTestStartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            test = ab_test_start(version=target.version, actor=actor_for_request(request), **body.validated_data)
        except PromotionRefused as exc:
            raise Conflict(str(exc)) from None
        return Response(ab_test_report(test=test), status=status.HTTP_201_CREATED)

    @extend_schema(responses=ABTestReportSerializer)
    @action(detail=False, methods=["get"], url_path="ab-test")
    def ab_test(self, request: Request) -> Response:
        """The running A/B test (or the last one) with each arm's predictions and live metrics."""
        test = ABTest.objects.select_related("champion", "challenger").order_by("-created_at", "-pk").first()
        if test is None:
            raise NotFound("No A/B test has been run.")
        return Response(ab_test_report(test=test))

    @extend_schema(request=ABTestStopSerializer, responses=ABTestReportSerializer)
    @action(detail=False, methods=["post"], url_path="ab-test/stop")
    def stop_ab_test(self, request: Request) -> Response:
        """End the running A/B test; with "promote" the challenger becomes the active model."""
        body = ABTestStopSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            test = ab_test_stop(actor=actor_for_request(request), **body.validated_data)
        except PromotionRefused as exc:
            raise Conflict(str(exc)) from None
        return Response(ab_test_report(test=test))

    @extend_schema(
        request=TrainRequestSerializer,
        responses={202: inline_serializer("TrainQueued", {"task_id": serializers.CharField()})},
    )
    @action(detail=False, methods=["post"])
    def train(self, request: Request) -> Response:
        """Queue training on the stored customers and their recorded outcomes."""
        from modelregistry.tasks import train_model

        body = TrainRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        actor = actor_for_request(request)
        result = train_model.delay(**body.validated_data, requested_by_user_id=actor.user_id)
        return Response({"task_id": result.id}, status=status.HTTP_202_ACCEPTED)
