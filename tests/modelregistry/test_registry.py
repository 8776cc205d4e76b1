from __future__ import annotations

import time

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import IntegrityError, transaction

from accounts.models import AuditLogEntry
from accounts.services import SYSTEM, api_key_create
from modelregistry import loader
from modelregistry.models import ModelEvent, ModelStatus, ModelVersion
from modelregistry.services import PromotionRefused, model_promote, model_rollback, model_version_set_status

pytestmark = pytest.mark.django_db


def test_registered_version_keeps_artifact_checksum_and_metrics(register_model, trained_model):
    version = register_model(activate=False)
    assert version.status == ModelStatus.TESTING
    assert len(version.artifact_sha256) == 64
    with version.artifact.open("rb") as fh:
        from churn_ml.artifact import sha256_hex

        assert sha256_hex(fh.read()) == version.artifact_sha256
    assert version.metrics["roc_auc"] == trained_model.metrics["roc_auc"]
    assert version.training_rows == 5634
    assert version.reference_stats
    assert ModelEvent.objects.filter(model_version=version, kind="trained").exists()


def test_promote_makes_it_the_only_active_and_remembers_the_previous(register_model):
    first = register_model(activate=True)
    second = register_model(activate=False)
    promoted = model_promote(version=second.version, actor=SYSTEM)
    first.refresh_from_db()
    assert promoted.status == ModelStatus.ACTIVE
    assert first.status == ModelStatus.DEPRECATED
    assert promoted.previous_active == first
    assert ModelVersion.objects.active().count() == 1
    assert AuditLogEntry.objects.filter(action="model.promote", object_id=second.version, outcome="success").exists()


def test_the_database_refuses_two_active_versions(register_model):
    register_model(activate=True)
    other = register_model(activate=False)
    other.status = ModelStatus.ACTIVE
    with pytest.raises(IntegrityError), transaction.atomic():
        other.save()


def test_promotion_refuses_a_clearly_worse_candidate_and_records_why(register_model, weak_model):
    active = register_model(activate=True, roc_auc=0.85)
    worse = register_model(activate=False, roc_auc=0.835, trained=weak_model)
    with pytest.raises(PromotionRefused, match=r"significantly below the active model's"):
        model_promote(version=worse.version, actor=SYSTEM)
    active.refresh_from_db()
    assert active.status == ModelStatus.ACTIVE
    assert AuditLogEntry.objects.filter(action="model.promote", object_id=worse.version, outcome="denied").exists()
    assert ModelEvent.objects.filter(model_version=worse, kind="promotion_refused").exists()


def test_a_candidate_no_worse_on_the_same_rows_is_promoted_whatever_its_own_figure(register_model):
    register_model(activate=True, roc_auc=0.85)
    close = register_model(activate=False, roc_auc=0.8405)
    assert model_promote(version=close.version, actor=SYSTEM).status == ModelStatus.ACTIVE


def test_forced_promotion_needs_a_reason(register_model):
    register_model(activate=True, roc_auc=0.85)
    worse = register_model(activate=False, roc_auc=0.80)
    with pytest.raises(PromotionRefused, match="needs a reason"):
        model_promote(version=worse.version, actor=SYSTEM, force=True)
    forced = model_promote(version=worse.version, actor=SYSTEM, force=True, reason="fixes a data bug")
    assert forced.status == ModelStatus.ACTIVE


def test_rollback_returns_to_the_previous_version(register_model):
    first = register_model(activate=True)
    second = register_model(activate=True)
    restored = model_rollback(actor=SYSTEM, reason="bad outputs")
    second.refresh_from_db()
    assert restored == first
    assert restored.status == ModelStatus.ACTIVE
    assert second.status == ModelStatus.DEPRECATED
    assert ModelEvent.objects.filter(model_version=first, kind="rolled_back").exists()
    assert AuditLogEntry.objects.filter(action="model.rollback", object_id=first.version).exists()


def test_rollback_without_a_previous_version_is_refused(register_model):
    register_model(activate=True)
    with pytest.raises(PromotionRefused, match="no previous version"):
        model_rollback(actor=SYSTEM)


def test_the_active_version_cannot_be_deprecated(register_model):
    active = register_model(activate=True)
    with pytest.raises(PromotionRefused, match="is active"):
        model_version_set_status(version=active.version, status=ModelStatus.DEPRECATED, actor=SYSTEM)


def _tamper(version: ModelVersion) -> None:
    path = version.artifact.path
    with open(path, "rb") as fh:
        data = bytearray(fh.read())
    data[len(data) // 2] ^= 0xFF
    with open(path, "wb") as fh:
        fh.write(bytes(data))


def test_a_tampered_artifact_is_never_promoted(register_model):
    register_model(activate=True)
    candidate = register_model(activate=False)
    _tamper(candidate)
    with pytest.raises(PromotionRefused, match="checksum mismatch"):
        model_promote(version=candidate.version, actor=SYSTEM)


def test_a_tampered_active_artifact_is_refused_and_the_loaded_model_keeps_serving(register_model, monkeypatch):
    first = register_model(activate=True)
    assert loader.active_model().version == first.version
    second = register_model(activate=False)
    # Promote, then corrupt the file before this process loads it.
    model_promote(version=second.version, actor=SYSTEM)
    _tamper(second)
    cache.set(loader.STAMP_KEY, f"{second.pk}:{second.artifact_sha256}", 60)
    loader.forget_local()
    assert loader.active_model().version == first.version
    assert ModelEvent.objects.filter(model_version=second, kind="load_refused").exists()


def test_a_tampered_active_artifact_with_nothing_loaded_makes_scoring_unavailable(register_model):
    active = register_model(activate=True)
    _tamper(active)
    with pytest.raises(loader.ModelUnavailable, match="checksum mismatch"):
        loader.active_model()


def test_another_process_promotion_is_picked_up_within_a_second(register_model, monkeypatch):
    first = register_model(activate=True)
    assert loader.active_model().version == first.version
    second = register_model(activate=False)
    # Another process promotes: the database changes and the shared stamp moves; this process
    # has not been told anything else.
    ModelVersion.objects.filter(pk=first.pk).update(status=ModelStatus.DEPRECATED)
    ModelVersion.objects.filter(pk=second.pk).update(status=ModelStatus.ACTIVE)
    cache.set(loader.STAMP_KEY, f"{second.pk}:{second.artifact_sha256}", 60)
    assert loader.active_model().version == first.version  # checked less than a second ago
    now = time.monotonic()
    monkeypatch.setattr(loader.time, "monotonic", lambda: now + 1.1)
    assert loader.active_model().version == second.version


def test_train_model_command_trains_stores_and_activates(capsys):
    call_command("train_model", "--data", "data/telco_customer_churn.csv", "--activate", "--algorithm", "logistic")
    out = capsys.readouterr().out
    version = ModelVersion.objects.get()
    assert version.status == ModelStatus.ACTIVE
    assert f"Model version {version.version} (logistic), status active" in out
    assert '"roc_auc"' in out
    # The quality bar of the product on held-out Telco customers.
    assert version.metrics["roc_auc"] >= 0.835
    assert version.metrics["brier"] <= 0.14


def test_train_model_command_explains_a_missing_file():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no such file"):
        call_command("train_model", "--data", "nope.csv")


def test_models_api_lists_and_promotes_with_the_right_scope(register_model, department):
    active = register_model(activate=True)
    candidate = register_model(activate=False)
    from rest_framework.test import APIClient

    _, reader = api_key_create(department=department, name="reader")
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=reader)
    listed = client.get("/api/v1/models/").json()
    assert {m["version"] for m in listed["results"]} == {active.version, candidate.version}
    detail = client.get(f"/api/v1/models/{active.version}/").json()
    assert detail["status"] == "active"
    assert detail["metrics"]["roc_auc"] >= 0.835
    assert [e["kind"] for e in detail["events"]][:1] == ["promoted"]
    assert client.post(f"/api/v1/models/{candidate.version}/promote/", {}, format="json").status_code == 403

    _, operator = api_key_create(department=department, name="ops", scopes=["models:manage", "customers:read"])
    client.credentials(HTTP_X_API_KEY=operator)
    response = client.post(f"/api/v1/models/{candidate.version}/promote/", {}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "active"
    response = client.post("/api/v1/models/rollback/", {"reason": "test"}, format="json")
    assert response.json()["version"] == active.version
    response = client.post(f"/api/v1/models/{active.version}/deprecate/", {}, format="json")
    assert response.status_code == 409
    assert "is active" in response.json()["detail"]


def test_the_served_version_is_published_as_a_metric(register_model, django_capture_on_commit_callbacks):
    from prometheus_client import REGISTRY

    first = register_model(activate=True)
    loader.active_model()
    assert (
        REGISTRY.get_sample_value("churn_active_model_info", {"version": first.version, "algorithm": "logistic"}) == 1
    )
    with django_capture_on_commit_callbacks(execute=True):
        second = register_model(activate=True)
    assert loader.active_model().version == second.version
    assert (
        REGISTRY.get_sample_value("churn_active_model_info", {"version": first.version, "algorithm": "logistic"}) == 0
    )
    assert (
        REGISTRY.get_sample_value("churn_active_model_info", {"version": second.version, "algorithm": "logistic"}) == 1
    )
