"""Retraining records over the API (point 8) and the churn report per version (point 6)."""

from __future__ import annotations

import pytest

from modelregistry.models import RetrainingRun, TriggerDecision, TriggerEvaluation, TriggerKind

pytestmark = pytest.mark.django_db


def test_retraining_runs_and_trigger_evaluations_with_their_evidence(active_version, key_client):
    run = RetrainingRun.objects.create(
        trigger=TriggerKind.DRIFT, policy="never", active_version=active_version, candidate_auc=0.83,
        active_auc=0.79, decision="kept_testing", decision_reason="Policy 'never'.", in_progress=False,
        details={"candidate": {"roc_auc": 0.83}, "active": {"roc_auc": 0.79}},
    )
    evaluation = TriggerEvaluation.objects.create(
        kind=TriggerKind.DRIFT, model_version=active_version, value=0.31, threshold=0.04, p_value=0.0004,
        decision=TriggerDecision.TRIGGERED, sample_size=800, retraining_run=run,
        details={"psi": {"tenure_months": 0.31}, "thresholds": {"tenure_months": 0.04}, "worst": "tenure_months"},
    )
    runs = key_client.get("/api/v1/models/retraining-runs/").json()
    assert runs["results"][0]["id"] == run.pk
    assert runs["results"][0]["active_version"] == active_version.version
    detail = key_client.get(f"/api/v1/models/retraining-runs/{run.pk}/").json()
    assert detail["candidate_auc"] == 0.83
    assert detail["decision_reason"] == "Policy 'never'."
    assert detail["evaluations"][0]["details"]["thresholds"]["tenure_months"] == 0.04
    checks = key_client.get("/api/v1/models/trigger-evaluations/?kind=drift").json()
    assert checks["results"][0]["p_value"] == 0.0004
    one = key_client.get(f"/api/v1/models/trigger-evaluations/{evaluation.pk}/").json()
    assert (one["value"], one["threshold"], one["decision"]) == (0.31, 0.04, "triggered")
    assert one["live"]["realized"]["n"] == 0
    assert key_client.get("/api/v1/models/trigger-evaluations/999999/").status_code == 404
    # A version label cannot shadow the routes: the registry still answers for versions.
    assert key_client.get(f"/api/v1/models/{active_version.version}/").status_code == 200


def test_the_report_of_a_version_has_lift_gains_calibration_cuts_and_a_backtest_reason(active_version, key_client):
    body = key_client.get(f"/api/v1/models/{active_version.version}/report/").json()
    assert [row["top_share"] for row in body["lift"]] == [0.05, 0.1, 0.2]
    assert body["lift"][0]["lift"] > 2  # the top 5% churn at more than twice the base rate
    assert len(body["gains"]) >= 11
    assert body["gains"][-1]["captured"] == 1.0
    assert sum(b["n"] for b in body["calibration"]) == active_version.metrics["n_test"]
    assert [row["risk_level"] for row in body["threshold_table"]] == ["medium", "high", "critical"]
    assert body["backtest"] is None
    assert body["backtest_reason"]
    assert body["live"] is None


def test_the_admin_page_draws_the_gains_and_calibration_curves(admin_client, active_version):
    page = admin_client.get(f"/admin/modelregistry/modelversion/{active_version.pk}/change/").content.decode()
    assert page.count("<svg") >= 2
    assert "Cumulative gains" in page
    assert "Calibration" in page
    assert "<polyline" in page
