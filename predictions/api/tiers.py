"""Risk tiers over the API: GET tiers/, GET and PATCH tiers/{risk_level}/ (scope tiers:manage).

Every edit goes through predictions.tier_actions.tier_action_update, which writes the audit entry in
the edit's transaction; the admin uses the same service.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.context import actor_for_request
from churn_infra.api import require_object
from predictions.api.serializers import OfferSerializer
from predictions.models import RiskLevel, RiskTierAction
from predictions.tier_actions import tier_action_update, tier_offer


class TierSerializer(serializers.ModelSerializer):
    """A risk level's recommendations and offer, as predictions at that level carry them."""

    offer = serializers.SerializerMethodField()
    offer_discount_percent = serializers.FloatField(allow_null=True)

    class Meta:
        model = RiskTierAction
        fields = ("risk_level", "recommendations", "offer_discount_percent", "offer_months", "offer", "updated_at")
        read_only_fields = fields

    @extend_schema_field(OfferSerializer(allow_null=True))
    def get_offer(self, tier: RiskTierAction) -> dict | None:
        return tier_offer(tier.offer_discount_percent, tier.offer_months)


class TierEditSerializer(serializers.Serializer):
    """PATCH body: any of the three; a null discount removes the offer (and its months)."""

    recommendations = serializers.ListField(child=serializers.CharField(), required=False)
    offer_discount_percent = serializers.FloatField(required=False, allow_null=True)
    offer_months = serializers.IntegerField(required=False, allow_null=True)


class TierViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The four risk tiers. Reading and editing both need the tiers:manage scope."""

    serializer_class = TierSerializer
    lookup_field = "risk_level"
    lookup_value_regex = "|".join(RiskLevel.values)
    pagination_class = None
    required_scopes = {"GET": "tiers:manage", "PATCH": "tiers:manage"}
    http_method_names = ["get", "patch", "head", "options"]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return RiskTierAction.objects.order_by("pk")

    @extend_schema(request=TierEditSerializer, responses=TierSerializer)
    def partial_update(self, request: Request, risk_level: str | None = None) -> Response:
        tier = self.get_object()
        # The service checks the values (and refuses unknown fields) so that the admin gets the same rules.
        tier = tier_action_update(
            risk_level=tier.risk_level, changes=require_object(request.data), actor=actor_for_request(request)
        )
        return Response(TierSerializer(tier).data)
