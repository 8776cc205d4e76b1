"""Reads for the model registry."""

from __future__ import annotations

from modelregistry.models import ModelVersion


def model_active() -> ModelVersion | None:
    return ModelVersion.objects.active().first()


def model_readiness_problem() -> str | None:
    """None when an active model exists and loads; otherwise why not."""
    from modelregistry.loader import ModelUnavailable, active_scorer

    try:
        active_scorer()
    except ModelUnavailable as exc:
        return f"model unavailable: {exc}"
    return None
