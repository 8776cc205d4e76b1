from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.context import actor_for_request
from churn_platform.api import require_object, require_record_list, row_errors
from customers.api.serializers import BulkCustomersSerializer, CustomerRecordSerializer
from predictions.api.filters import PredictionFilter
from predictions.api.serializers import PredictionSerializer
from predictions.selectors import prediction_list
from predictions.services import ScoringInputError, prediction_score, predictions_score_batch


class PredictionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Prediction history, newest first. POST scores one customer record (or a stored customer)."""

    serializer_class = PredictionSerializer
    filterset_class = PredictionFilter
    lookup_field = "prediction_id"
    lookup_value_regex = r"[0-9a-fA-F-]{32,36}"
    required_scopes = {"GET": "customers:read", "POST": "predictions:write"}

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return prediction_list(actor=actor_for_request(self.request))

    @extend_schema(
        request=CustomerRecordSerializer,
        responses={201: PredictionSerializer},
        description='A full customer record, or {"customer_id": "..."} to score a stored customer.',
    )
    def create(self, request: Request) -> Response:
        try:
            prediction = prediction_score(body=require_object(request.data), actor=actor_for_request(request))
        except ScoringInputError as exc:
            raise ValidationError(exc.errors) from None
        return Response(prediction, status=status.HTTP_201_CREATED)


class PredictionBatchView(APIView):
    """Score up to 1,000 records in one call; results and per-item errors in input order."""

    required_scopes = {"POST": "predictions:write"}

    @extend_schema(
        request=BulkCustomersSerializer,
        responses=inline_serializer(
            "PredictionBatchResult",
            {
                "predictions": PredictionSerializer(many=True),
                "errors": serializers.ListField(child=serializers.DictField()),
            },
        ),
        parameters=[OpenApiParameter("customers", description="records or {customer_id} references", many=True)],
    )
    def post(self, request: Request) -> Response:
        items = require_record_list(request.data, key="customers", limit=settings.BATCH_PREDICTION_MAX_RECORDS)
        outcome = predictions_score_batch(items=items, actor=actor_for_request(request))
        return Response(
            {"predictions": outcome.predictions, "errors": row_errors(outcome.result, outcome.errors, items)}
        )
