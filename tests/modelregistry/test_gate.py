"""The promotion gate compares candidate and active model on the same rows (issue 12, point 3)."""

from __future__ import annotations

import pytest

from accounts.models import AuditLogEntry
from accounts.services import SYSTEM
from modelregistry.models import ModelEvent, ModelStatus
from modelregistry.services import PromotionRefused, model_promote

pytestmark = pytest.mark.django_db


def test_a_candidate_better_on_the_same_rows_is_promoted_whatever_the_old_split_said(register_model, weak_model):
    # The active model's registry figure (0.856) came from its own split; the candidate's 0.830
    # from another. Measured on the candidate's held-out rows, the candidate is the better one.
    active = register_model(activate=True, roc_auc=0.856, trained=weak_model)
    candidate = register_model(activate=False, roc_auc=0.830)
    promoted = model_promote(version=candidate.version, actor=SYSTEM)
    assert promoted.status == ModelStatus.ACTIVE
    active.refresh_from_db()
    assert active.status == ModelStatus.DEPRECATED
    event = ModelEvent.objects.get(model_version=candidate, kind="promoted")
    comparison = event.details["comparison"]
    assert comparison["rows"]["held_out"] == candidate.metrics["n_test"]
    assert comparison["n"] == comparison["rows"]["held_out"] + comparison["rows"]["recent_outcomes"]
    assert comparison["candidate_roc_auc"] > comparison["active_roc_auc"]
    assert comparison["method"] == "delong_paired"
    assert 0.0 <= comparison["p_value"] <= 1.0
    assert comparison["decision"] == "pass"


def test_a_candidate_significantly_worse_on_the_same_rows_is_refused_with_the_evidence(register_model, weak_model):
    active = register_model(activate=True)
    # Its own (flattering) figure would have passed the old rule.
    worse = register_model(activate=False, roc_auc=0.95, trained=weak_model)
    with pytest.raises(PromotionRefused, match="significantly below"):
        model_promote(version=worse.version, actor=SYSTEM)
    active.refresh_from_db()
    assert active.status == ModelStatus.ACTIVE
    event = ModelEvent.objects.get(model_version=worse, kind="promotion_refused")
    comparison = event.details["comparison"]
    assert comparison["candidate_roc_auc"] < comparison["active_roc_auc"]
    assert comparison["p_worse"] < 0.05
    assert comparison["n"] > 1000
    denied = AuditLogEntry.objects.get(action="model.promote", object_id=worse.version, outcome="denied")
    assert denied.details["comparison"]["p_value"] == comparison["p_value"]
    # Forced with a reason it goes through, and the comparison is still on record.
    model_promote(version=worse.version, actor=SYSTEM, force=True, reason="known data fix")
    forced = ModelEvent.objects.get(model_version=worse, kind="promoted")
    assert forced.details["forced"] is True
    assert forced.details["comparison"]["decision"] == "refuse"


def test_recent_outcomes_join_the_comparison_rows(register_model, weak_model, demo_training_data):
    from django.utils import timezone

    from customers.models import Customer, Outcome
    from tests.factories import CustomerFactory

    register_model(activate=True, trained=weak_model)
    candidate = register_model(activate=False)
    for i in range(30):
        customer = CustomerFactory(customer_id=f"G-{i:03d}")
        Outcome.objects.create(customer=customer, churned=i % 3 == 0, observed_at=timezone.now(), source="tests")
    assert Customer.objects.count() == 30
    model_promote(version=candidate.version, actor=SYSTEM)
    comparison = ModelEvent.objects.get(model_version=candidate, kind="promoted").details["comparison"]
    assert comparison["rows"]["recent_outcomes"] == 30


def test_the_absolute_floor_refuses_even_without_an_active_model(register_model, settings):
    settings.MODEL_GATE_MIN_ROC_AUC = 0.99
    version = register_model(activate=False)
    with pytest.raises(PromotionRefused, match="below the floor"):
        model_promote(version=version.version, actor=SYSTEM)


def test_the_admin_shows_the_comparison_before_promoting(admin_client, register_model, weak_model):
    register_model(activate=True, trained=weak_model)
    candidate = register_model(activate=False)
    url = "/admin/modelregistry/modelversion/"
    page = admin_client.post(url, {"action": "promote_selected", "_selected_action": [candidate.pk]})
    assert page.status_code == 200
    text = page.content.decode()
    assert "Promote" in text
    assert candidate.version in text
    assert "p-value" in text
    assert "held-out rows" in text
    candidate.refresh_from_db()
    assert candidate.status == ModelStatus.TESTING  # nothing changed yet
    done = admin_client.post(
        url, {"action": "promote_selected", "_selected_action": [candidate.pk], "confirm": "yes"}
    )
    assert done.status_code == 302
    candidate.refresh_from_db()
    assert candidate.status == ModelStatus.ACTIVE


def test_the_admin_shows_both_versions_side_by_side_before_a_roll_back(admin_client, register_model, weak_model):
    first = register_model(activate=True, trained=weak_model)
    second = register_model(activate=True)
    url = "/admin/modelregistry/modelversion/"

    page = admin_client.post(url, {"action": "rollback_active", "_selected_action": [second.pk]})

    text = page.content.decode()
    assert page.status_code == 200
    assert 'data-role="side-by-side"' in text
    assert first.version in text
    assert second.version in text
    assert f"{first.metrics['roc_auc']:.4g}" in text
    assert f"{second.metrics['roc_auc']:.4g}" in text
    second.refresh_from_db()
    assert second.status == ModelStatus.ACTIVE  # nothing changed yet

    done = admin_client.post(url, {"action": "rollback_active", "_selected_action": [second.pk], "confirm": "yes"})

    assert done.status_code == 302
    first.refresh_from_db()
    assert first.status == ModelStatus.ACTIVE
