"""Writes for the model registry: register a trained model, promote, roll back, deprecate.

Over 500 lines on purpose (about 500): the registry's operator actions, each one service writing its audit
entry and event; they share the version locks and the active-version stamp.

Each operator action locks the rows it changes, changes them, and writes the audit entry and the
version's event in one transaction; processes learn of the new active version through
``loader.publish_active_stamp`` once the transaction commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from accounts.services import SYSTEM, Actor, audit_record, public_actor_label
from churn_ml import artifact as ml_artifact
from churn_ml.deferred import deferred
from churn_ml.evaluation import live_metrics
from churn_ml.performance import churn_report, needed_per_arm, roc_auc_ci, unpaired_auc_test
from churn_ml.schema import RECORD_FIELDS, SCHEMA_VERSION, load_telco_csv, validate_columns
from churn_ml.tiers import RISK_THRESHOLDS
from churn_ml.trained import TrainedModel
from customers.models import Customer, Outcome
from modelregistry import gate, loader
from modelregistry.models import ABTest, ABTestStatus, ModelEvent, ModelStatus, ModelVersion
from modelregistry.ports import prediction_reader

# pandas loads on first use (churn_ml.deferred): a web worker that scores single records never needs it.
pd = deferred("pandas")

RISK_CUTS = tuple(zip(("medium", "high", "critical"), RISK_THRESHOLDS, strict=True))

# Training imports scikit-learn (~86 MB per process): named here, imported by the first process
# that trains (a worker), never by a web worker that only serves (churn_ml.deferred).
training = deferred("churn_ml.training")


class PromotionRefused(Exception):
    """The registry's rules forbid this state change; the message says why and what to do.

    ``details`` carries the evidence (e.g. the gate's comparison) for the refusal's model event.
    """

    def __init__(self, message: str, *, version_pk: int | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.version_pk = version_pk
        self.details = details or {}


def model_event_record(
    *, version: ModelVersion, kind: str, actor: Actor = SYSTEM, details: dict[str, Any] | None = None
) -> ModelEvent:
    return ModelEvent.objects.create(model_version=version, kind=kind, actor_label=actor.label, details=details or {})


def _version_label(trained: TrainedModel, sha: str) -> str:
    short = {"logistic": "lr", "gradient_boosting": "gb"}.get(trained.algorithm, trained.algorithm[:4])
    base = f"{timezone.now():%Y%m%d-%H%M%S}-{short}-{sha[:6]}"
    label, n = base, 1
    # The same data trained twice within a second gives the same base label.
    while ModelVersion.objects.filter(version=label).exists():
        n += 1
        label = f"{base}-{n}"
    return label


@transaction.atomic
def model_version_register(
    *,
    trained: TrainedModel,
    actor: Actor = SYSTEM,
    training_source: str = "",
    notes: str = "",
    backtest: dict[str, Any] | None = None,
) -> ModelVersion:
    """Store a trained model's artifact, held-out rows, report and metrics as a new version in
    status testing. ``backtest`` is churn_ml.training.backtest's result (or its reason for none)."""
    backtest = backtest or {"result": None, "reason": "No backtest was run for this version."}
    data = ml_artifact.dump_artifact(trained)
    sha = ml_artifact.sha256_hex(data)
    label = _version_label(trained, sha)
    version = ModelVersion(
        version=label,
        algorithm=trained.algorithm,
        status=ModelStatus.TESTING,
        artifact_sha256=sha,
        artifact_size=len(data),
        feature_spec_version=trained.feature_spec_version,
        schema_version=SCHEMA_VERSION,
        training_data_sha256=trained.data_fingerprint,
        training_rows=trained.n_rows,
        training_source=training_source[:255],
        metrics={**dict(trained.metrics), "candidates": dict(trained.candidates), "seed": trained.seed},
        reference_stats=trained.reference.to_dict(),
        trained_by=actor.label,
        trained_by_user=actor.user if actor.user is not None and actor.user.pk else None,
        notes=notes,
    )
    version.artifact.save(f"{label}.zip", ContentFile(data), save=False)
    if trained.holdout is not None:
        columns, labels = trained.holdout
        version.holdout.save(f"{label}.json.gz", gate.holdout_file(columns, labels), save=False)
        version.report = {
            "source": "held_out",
            **churn_report(trained.scorer.predict_proba(columns), labels, cuts=RISK_CUTS),
            "backtest": backtest,
        }
    version.save()
    model_event_record(version=version, kind="trained", actor=actor, details={"metrics": dict(trained.metrics)})
    audit_record(
        actor=actor,
        action="model.register",
        obj=version,
        object_id=version.version,
        details={"algorithm": version.algorithm, "roc_auc": version.roc_auc},
    )
    return version


def _lock_versions(*pks: int) -> dict[int, ModelVersion]:
    # Lock in primary-key order so two concurrent promotions cannot deadlock each other.
    rows = ModelVersion.objects.select_for_update().filter(pk__in=[p for p in pks if p is not None]).order_by("pk")
    return {row.pk: row for row in rows}


@transaction.atomic
def model_version_promote(
    *, version: str, actor: Actor, force: bool = False, reason: str = "", event_kind: str = "promoted"
) -> ModelVersion:
    """Make ``version`` the active model; the previously active one becomes deprecated.

    Refused for a failed or archived version, for one whose artifact does not verify, and, unless
    ``force`` is given with a reason, by the promotion gate (modelregistry.gate): significantly
    worse than the active model on the same rows, or below the absolute floor.
    """
    candidate_pk = ModelVersion.objects.filter(version=version).values_list("pk", flat=True).first()
    if candidate_pk is None:
        raise ModelVersion.DoesNotExist(f"No model version {version!r}.")
    active_pk = ModelVersion.objects.active().values_list("pk", flat=True).first()
    locked = _lock_versions(candidate_pk, active_pk)
    candidate = locked[candidate_pk]
    active = locked.get(active_pk) if active_pk is not None else None
    if active is not None and active.status != ModelStatus.ACTIVE:
        active = None  # changed while we waited for the lock
    if candidate.status == ModelStatus.ACTIVE:
        raise PromotionRefused(f"{candidate.version} is already the active model.")
    if candidate.status in (ModelStatus.FAILED, ModelStatus.ARCHIVED):
        raise PromotionRefused(f"{candidate.version} is {candidate.status} and cannot be promoted.")
    if force and not reason.strip():
        raise PromotionRefused("A forced promotion needs a reason.")
    try:
        loader.load_version(candidate)
    except (ml_artifact.ArtifactError, OSError) as exc:
        _refuse(candidate, f"its artifact cannot be loaded: {exc}")
    comparison = None
    if event_kind == "promoted":
        comparison = _gate(candidate, active)
        if comparison.get("refusal") and not force:
            _refuse(
                candidate,
                f"{comparison['refusal']}; force it with a reason to promote anyway",
                details={"comparison": comparison},
            )

    now = timezone.now()
    if active is not None:
        active.status = ModelStatus.DEPRECATED
        active.save(update_fields=["status", "updated_at"])
        model_event_record(version=active, kind="deprecated", actor=actor, details={"replaced_by": candidate.version})
    candidate.status = ModelStatus.ACTIVE
    candidate.promoted_at = now
    candidate.promoted_by = actor.label
    if event_kind == "promoted":
        candidate.previous_active = active
    candidate.save(update_fields=["status", "promoted_at", "promoted_by", "previous_active", "updated_at"])
    details = {"previous": active.version if active else None, "forced": force, "reason": reason}
    if comparison is not None:
        details["comparison"] = comparison
    model_event_record(version=candidate, kind=event_kind, actor=actor, details=details)
    audit_record(
        actor=actor,
        action=f"model.{'promote' if event_kind == 'promoted' else 'rollback'}",
        obj=candidate,
        object_id=candidate.version,
        details=details,
    )
    transaction.on_commit(loader.publish_active_stamp)
    return candidate


def _gate(candidate: ModelVersion, active: ModelVersion | None) -> dict[str, Any]:
    """The gate's comparison with the active model, or the floor alone when none is active."""
    note = "no model was active"
    if active is not None:
        try:
            return gate.promotion_comparison(candidate=candidate, active=active)
        except (ml_artifact.ArtifactError, OSError) as exc:
            # The active model's artifact no longer loads: nothing to compare with, the floor applies.
            note = f"the active model could not be scored: {exc}"
    floor = settings.MODEL_GATE_MIN_ROC_AUC
    auc = candidate.roc_auc
    refusal = f"its held-out ROC AUC {auc:.4f} is below the floor MODEL_GATE_MIN_ROC_AUC = {floor}" if (
        auc is not None and auc < floor
    ) else None
    return {"candidate": candidate.version, "active": None, "note": note, "candidate_roc_auc": auc,
            "min_roc_auc": floor, "refusal": refusal, "decision": "refuse" if refusal else "pass"}


def promotion_preview(*, version: str) -> dict[str, Any]:
    """The gate's comparison for promoting ``version`` now, without promoting (the admin's confirmation page)."""
    candidate = ModelVersion.objects.get(version=version)
    return _gate(candidate, ModelVersion.objects.active().first())


def _refuse(candidate: ModelVersion, why: str, details: dict[str, Any] | None = None) -> None:
    raise PromotionRefused(
        f"Refused to promote {candidate.version}: {why}.", version_pk=candidate.pk, details=details
    )


def _record_refusal(exc: PromotionRefused, actor: Actor) -> None:
    # Written after the promotion's own transaction rolled back, so the refusal stays on record.
    if exc.version_pk is None:
        return
    version = ModelVersion.objects.get(pk=exc.version_pk)
    with transaction.atomic():
        details = {"reason": str(exc), **exc.details}
        model_event_record(version=version, kind="promotion_refused", actor=actor, details=details)
        audit_record(
            actor=actor,
            action="model.promote",
            obj=version,
            object_id=version.version,
            outcome="denied",
            details=details,
        )


def model_promote(*, version: str, actor: Actor, force: bool = False, reason: str = "") -> ModelVersion:
    """Promote ``version`` (see model_version_promote); a refusal is recorded and re-raised."""
    try:
        return model_version_promote(version=version, actor=actor, force=force, reason=reason)
    except PromotionRefused as exc:
        _record_refusal(exc, actor)
        raise


def model_rollback(*, actor: Actor, reason: str = "") -> ModelVersion:
    """Return to the version that was active before the current one."""
    active = ModelVersion.objects.active().select_related("previous_active").first()
    if active is None:
        raise PromotionRefused("No model is active, so there is nothing to roll back.")
    previous = active.previous_active
    if previous is None:
        raise PromotionRefused(f"{active.version} has no previous version to roll back to.")
    try:
        return model_version_promote(
            version=previous.version,
            actor=actor,
            force=True,
            reason=reason or f"roll back from {active.version}",
            event_kind="rolled_back",
        )
    except PromotionRefused as exc:
        _record_refusal(exc, actor)
        raise


@transaction.atomic
def model_version_set_status(*, version: str, status: str, actor: Actor, reason: str = "") -> ModelVersion:
    """Deprecate or archive a version that is not serving."""
    if status not in (ModelStatus.DEPRECATED, ModelStatus.ARCHIVED):
        raise PromotionRefused(f"Status {status!r} cannot be set directly.")
    row = ModelVersion.objects.select_for_update().get(version=version)
    if row.status == ModelStatus.ACTIVE:
        raise PromotionRefused(f"{row.version} is active; promote or roll back to another version first.")
    row.status = status
    row.save(update_fields=["status", "updated_at"])
    model_event_record(version=row, kind=str(status), actor=actor, details={"reason": reason})
    audit_record(actor=actor, action=f"model.{status}", obj=row, object_id=row.version, details={"reason": reason})
    return row


# --- training -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingData:
    frame: pd.DataFrame
    labels: np.ndarray
    source: str
    dates: np.ndarray | None = None
    """When each label was observed (datetime64), for the time backtest; None when the data has no dates."""


def training_data_from_file(path: str) -> TrainingData:
    frame, labels = load_telco_csv(path)
    return TrainingData(frame=frame, labels=labels, source=f"file:{path}")


def training_data_from_store() -> TrainingData:
    """Stored customers with their latest recorded outcome as the label."""
    latest = Outcome.objects.filter(customer=OuterRef("pk")).order_by("-observed_at", "-pk")
    rows = list(
        Customer.objects.annotate(label=Subquery(latest.values("churned")[:1]))
        .filter(label__isnull=False)
        .order_by("pk")
        .annotate(observed=Subquery(latest.values("observed_at")[:1]))
        .values_list(*RECORD_FIELDS, "label", "observed")
    )
    if not rows:
        raise ValueError("No stored customer has a recorded outcome to learn from.")
    columns = {name: [r[i] for r in rows] for i, name in enumerate(RECORD_FIELDS)}
    result = validate_columns(columns, len(rows))
    valid = result.valid
    labels = np.array([r[-2] for r in rows], dtype=bool)[valid]
    dates = np.array([np.datetime64(r[-1].replace(tzinfo=None), "s") for r in rows])[valid]
    return TrainingData(
        frame=result.frame(valid).reset_index(drop=True), labels=labels, source="store", dates=dates
    )


def model_train(
    *,
    data: TrainingData,
    actor: Actor = SYSTEM,
    activate: bool = False,
    algorithm: str = "auto",
    seed: int = 42,
    force: bool = False,
    reason: str = "",
    notes: str = "",
) -> ModelVersion:
    """Train on ``data``, register the result, and with ``activate`` promote it (registry rules apply)."""
    try:
        trained = training.train(data.frame, data.labels, seed=seed, algorithm=algorithm)
    except Exception as exc:
        ModelVersion.objects.create(
            version=f"{timezone.now():%Y%m%d-%H%M%S}-failed-{np.random.default_rng().integers(1 << 24):06x}",
            algorithm=algorithm,
            status=ModelStatus.FAILED,
            feature_spec_version="",
            schema_version=SCHEMA_VERSION,
            training_rows=len(data.frame),
            training_source=data.source[:255],
            trained_by=actor.label,
            error=f"{type(exc).__name__}: {exc}",
        )
        raise
    version = model_version_register(
        trained=trained,
        actor=actor,
        training_source=data.source,
        notes=notes,
        backtest=training.backtest(data.frame, data.labels, data.dates, seed=seed, algorithm=trained.algorithm),
    )
    if activate:
        version = model_promote(version=version.version, actor=actor, force=force, reason=reason)
    return version


# --- A/B tests ------------------------------------------------------------------------------


@transaction.atomic
def ab_test_start(*, version: str, traffic_percent: int, actor: Actor) -> ABTest:
    """Let ``version`` score ``traffic_percent`` % of customers next to the active model."""
    if not 1 <= traffic_percent <= 50:
        raise PromotionRefused("The challenger's share must be between 1 and 50 percent.")
    if ABTest.objects.select_for_update().filter(status=ABTestStatus.RUNNING).exists():
        raise PromotionRefused("An A/B test is already running; stop it first.")
    challenger = ModelVersion.objects.select_for_update().get(version=version)
    champion = ModelVersion.objects.active().first()
    if champion is None:
        raise PromotionRefused("No model is active to test against.")
    if challenger.pk == champion.pk:
        raise PromotionRefused(f"{challenger.version} is the active model; choose another version to test.")
    if challenger.status not in (ModelStatus.TESTING, ModelStatus.DEPRECATED):
        raise PromotionRefused(f"{challenger.version} is {challenger.status} and cannot be tested.")
    try:
        loader.load_version(challenger)
    except (ml_artifact.ArtifactError, OSError) as exc:
        raise PromotionRefused(f"{challenger.version}'s artifact cannot be loaded: {exc}") from exc
    test = ABTest.objects.create(
        challenger=challenger, champion=champion, traffic_percent=traffic_percent, started_by=actor.label
    )
    details = {"challenger": challenger.version, "champion": champion.version, "traffic_percent": traffic_percent}
    model_event_record(version=challenger, kind="ab_test_started", actor=actor, details=details)
    audit_record(actor=actor, action="model.ab_test_start", obj=test, details=details)
    transaction.on_commit(loader.publish_active_stamp)
    return test


def ab_test_stop(*, actor: Actor, promote: bool = False, force: bool = False, reason: str = "") -> ABTest:
    """End the running A/B test; with ``promote`` the challenger becomes the active model.

    Refused, and the test keeps running, when the challenger's live ROC AUC is significantly
    below the champion's (one-sided p < AB_TEST_ALPHA), unless forced with a reason; the
    comparison is audited either way. The registry's promotion gate applies unless forced.
    """
    with transaction.atomic():
        test = ABTest.objects.select_for_update().filter(status=ABTestStatus.RUNNING).first()
        if test is None:
            raise PromotionRefused("No A/B test is running.")
        comparison = ab_test_report(test=test)["comparison"] if promote else None
        if promote and force and not reason.strip():
            raise PromotionRefused("A forced promotion needs a reason.")
        if comparison is not None and comparison["significantly_worse"] and not force:
            raise PromotionRefused(
                f"Refused to promote {test.challenger.version}: its live ROC AUC is significantly below the "
                f"champion's (difference {comparison['difference']:+.4f}, 95% CI {comparison['ci95'][0]:+.4f} to "
                f"{comparison['ci95'][1]:+.4f}, p = {comparison['p_value']:.2g}); stop without promoting, or force "
                "it with a reason.",
                version_pk=test.challenger.pk,
                details={"comparison": comparison},
            )
        test.status = ABTestStatus.STOPPED
        test.stopped_at = timezone.now()
        test.stopped_by = actor.label
        test.conclusion = reason or ("challenger promoted" if promote else "challenger not promoted")
        test.save(update_fields=["status", "stopped_at", "stopped_by", "conclusion", "updated_at"])
        details = {"challenger": test.challenger.version, "promote": promote, "reason": reason, "forced": force}
        if comparison is not None:
            details["comparison"] = comparison
        model_event_record(version=test.challenger, kind="ab_test_stopped", actor=actor, details=details)
        audit_record(actor=actor, action="model.ab_test_stop", obj=test, details=details)
        if promote:
            model_promote(
                version=test.challenger.version, actor=actor, force=force, reason=reason or f"won A/B test {test.pk}"
            )
        transaction.on_commit(loader.publish_active_stamp)
    return test


def ab_test_comparison(
    champion_pairs: list[tuple[float, bool]], challenger_pairs: list[tuple[float, bool]]
) -> dict[str, Any]:
    """Challenger minus champion ROC AUC on each arm's outcomes (DeLong, independent arms), and
    the outcomes each arm needs to detect AB_TEST_DETECTABLE_DIFFERENCE."""
    intervals = {}
    counts = {}
    pooled_y: list[bool] = []
    for name, pairs in (("champion", champion_pairs), ("challenger", challenger_pairs)):
        p = np.array([float(x) for x, _ in pairs], dtype=np.float64)
        y = np.array([bool(o) for _, o in pairs], dtype=bool)
        counts[name] = len(y)
        pooled_y += y.tolist()
        intervals[name] = roc_auc_ci(p, y) if len(y) else None
    alpha = settings.AB_TEST_ALPHA
    out: dict[str, Any] = {
        "metric": "roc_auc",
        "difference": None,
        "ci95": None,
        "p_value": None,
        "p_worse": None,
        "significantly_worse": False,
        "n": counts,
        "needed_n": None,
        "detectable_difference": settings.AB_TEST_DETECTABLE_DIFFERENCE,
        "alpha": alpha,
        "power": settings.AB_TEST_POWER,
        "method": "delong_unpaired",
    }
    champion, challenger = intervals["champion"], intervals["challenger"]
    if champion is not None and challenger is not None:
        result = unpaired_auc_test(champion, challenger, n=len(pooled_y), positives=int(sum(pooled_y)))
        out.update(
            difference=round(result.difference, 6),
            ci95=[round(x, 6) for x in result.ci95],
            p_value=result.p_value,
            p_worse=result.p_worse,
            significantly_worse=result.p_worse < alpha,
        )
    if pooled_y:
        auc = champion.roc_auc if champion is not None else 0.8
        out["needed_n"] = needed_per_arm(
            auc=min(max(auc, 0.5), 0.99),
            positive_rate=float(np.mean(pooled_y)),
            difference=settings.AB_TEST_DETECTABLE_DIFFERENCE,
            alpha=alpha,
            power=settings.AB_TEST_POWER,
        )
    return out


def ab_test_report(*, test: ABTest) -> dict[str, Any]:
    """Each arm's predictions since the test started, its live metrics on outcomes recorded
    after the prediction (the arm's last prediction before each outcome), and the comparison
    of the two arms' ROC AUC (see ab_test_comparison)."""
    end = test.stopped_at or timezone.now()
    reader = prediction_reader()
    arms = {}
    pairs_of = {}
    for name, version in (("champion", test.champion), ("challenger", test.challenger)):
        n, mean = reader.scored_summary(version_id=version.pk, since=test.created_at, until=end)
        pairs = reader.outcome_pairs(
            version_id=version.pk, outcomes_since=test.created_at, predicted_since=test.created_at, predicted_until=end
        )
        pairs_of[name] = pairs
        report = live_metrics(pairs)
        arms[name] = {
            "version": version.version,
            "predictions": n,
            "mean_probability": mean,
            "outcomes": report.n,
            "live_accuracy": report.accuracy,
            "live_roc_auc": report.roc_auc,
            "live_brier": report.brier,
            "held_out_roc_auc": version.roc_auc,
        }
    return {
        "id": test.pk,
        "status": test.status,
        "traffic_percent": test.traffic_percent,
        "started_at": test.created_at,
        "started_by": public_actor_label(test.started_by),
        "stopped_at": test.stopped_at,
        "conclusion": test.conclusion,
        "arms": arms,
        "comparison": ab_test_comparison(pairs_of["champion"], pairs_of["challenger"]),
    }
