from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from predictions.models import Prediction, RiskTierAction
from predictions.services import forget_tier_actions


@admin.register(RiskTierAction)
class RiskTierActionAdmin(admin.ModelAdmin):
    """Operators edit the recommendation texts and the offer per risk level; no deploy needed."""

    list_display = ("risk_level", "recommendations", "offer_discount_percent", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: RiskTierAction, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        forget_tier_actions()


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ("created_at", "customer_id", "churn_probability", "risk_level", "model_version", "source",
                    "latency_ms")
    list_filter = ("risk_level", "model_version", "source", ("created_at", admin.DateFieldListFilter))
    search_fields = ("customer_id", "=prediction_id", "request_id")
    date_hierarchy = "created_at"
    list_select_related = ("model_version",)
    show_full_result_count = False
    readonly_fields = [f.name for f in Prediction._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
