"""Writes for the model registry: register a trained model, promote, roll back, deprecate.

Each operator action locks the rows it changes, changes them, and writes the audit entry and the
version's event in one transaction; processes learn of the new active version through
``loader.publish_active_stamp`` once the transaction commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from accounts.services import SYSTEM, Actor, audit_record, public_actor_label
from churn_ml import artifact as ml_artifact
from churn_ml.schema import RECORD_FIELDS, SCHEMA_VERSION, load_telco_csv, validate_columns
from churn_ml.training import TrainedModel, train
from modelregistry import loader
from modelregistry.models import ABTest, ABTestStatus, ModelEvent, ModelStatus, ModelVersion

# A candidate whose held-out ROC AUC is more than this below the active model's is refused
# unless the operator forces it with a reason.
PROMOTION_AUC_TOLERANCE = 0.01


class PromotionRefused(Exception):
    """The registry's rules forbid this state change; the message says why and what to do."""

    def __init__(self, message: str, *, version_pk: int | None = None) -> None:
        super().__init__(message)
        self.version_pk = version_pk


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
    *, trained: TrainedModel, actor: Actor = SYSTEM, training_source: str = "", notes: str = ""
) -> ModelVersion:
    """Store a trained model's artifact and metrics as a new version in status testing."""
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

    Refused for a failed or archived version, for one whose artifact does not verify, and for
    one whose held-out ROC AUC is more than 0.01 below the active model's unless ``force`` is
    given with a reason.
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
    if active is not None and not force:
        candidate_auc, active_auc = candidate.roc_auc, active.roc_auc
        if (
            candidate_auc is not None
            and active_auc is not None
            and candidate_auc < active_auc - PROMOTION_AUC_TOLERANCE
        ):
            _refuse(
                candidate,
                f"held-out ROC AUC {candidate_auc:.4f} is more than {PROMOTION_AUC_TOLERANCE} "
                f"below the active model's {active_auc:.4f}; force it with a reason to promote anyway",
            )
    try:
        loader.load_version(candidate)
    except (ml_artifact.ArtifactError, OSError) as exc:
        _refuse(candidate, f"its artifact cannot be loaded: {exc}")

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


def _refuse(candidate: ModelVersion, why: str) -> None:
    raise PromotionRefused(f"Refused to promote {candidate.version}: {why}.", version_pk=candidate.pk)


def _record_refusal(exc: PromotionRefused, actor: Actor) -> None:
    # Written after the promotion's own transaction rolled back, so the refusal stays on record.
    if exc.version_pk is None:
        return
    version = ModelVersion.objects.get(pk=exc.version_pk)
    with transaction.atomic():
        model_event_record(version=version, kind="promotion_refused", actor=actor, details={"reason": str(exc)})
        audit_record(
            actor=actor,
            action="model.promote",
            obj=version,
            object_id=version.version,
            outcome="denied",
            details={"reason": str(exc)},
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


def training_data_from_file(path: str) -> TrainingData:
    frame, labels = load_telco_csv(path)
    return TrainingData(frame=frame, labels=labels, source=f"file:{path}")


def training_data_from_store() -> TrainingData:
    """Stored customers with their latest recorded outcome as the label."""
    from customers.models import Customer, Outcome

    latest = Outcome.objects.filter(customer=OuterRef("pk")).order_by("-observed_at", "-pk")
    rows = list(
        Customer.objects.annotate(label=Subquery(latest.values("churned")[:1]))
        .filter(label__isnull=False)
        .order_by("pk")
        .values_list(*RECORD_FIELDS, "label")
    )
    if not rows:
        raise ValueError("No stored customer has a recorded outcome to learn from.")
    columns = {name: [r[i] for r in rows] for i, name in enumerate(RECORD_FIELDS)}
    result = validate_columns(columns, len(rows))
    valid = result.valid
    labels = np.array([r[-1] for r in rows], dtype=bool)[valid]
    return TrainingData(frame=result.frame(valid).reset_index(drop=True), labels=labels, source="store")


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
        trained = train(data.frame, data.labels, seed=seed, algorithm=algorithm)
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
    version = model_version_register(trained=trained, actor=actor, training_source=data.source, notes=notes)
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
    """End the running A/B test; with ``promote`` the challenger becomes the active model
    (the registry's rules apply unless forced with a reason)."""
    with transaction.atomic():
        test = ABTest.objects.select_for_update().filter(status=ABTestStatus.RUNNING).first()
        if test is None:
            raise PromotionRefused("No A/B test is running.")
        test.status = ABTestStatus.STOPPED
        test.stopped_at = timezone.now()
        test.stopped_by = actor.label
        test.conclusion = reason or ("challenger promoted" if promote else "challenger not promoted")
        test.save(update_fields=["status", "stopped_at", "stopped_by", "conclusion", "updated_at"])
        details = {"challenger": test.challenger.version, "promote": promote, "reason": reason}
        model_event_record(version=test.challenger, kind="ab_test_stopped", actor=actor, details=details)
        audit_record(actor=actor, action="model.ab_test_stop", obj=test, details=details)
        if promote:
            model_promote(
                version=test.challenger.version, actor=actor, force=force, reason=reason or f"won A/B test {test.pk}"
            )
        transaction.on_commit(loader.publish_active_stamp)
    return test


def ab_test_report(*, test: ABTest) -> dict[str, Any]:
    """Each arm's predictions since the test started, and its live metrics on outcomes recorded
    after the prediction (the arm's last prediction before each outcome)."""
    from django.db.models import Avg, Count

    from churn_ml.evaluation import live_metrics
    from customers.models import Outcome
    from predictions.models import Prediction

    end = test.stopped_at or timezone.now()
    arms = {}
    for name, version in (("champion", test.champion), ("challenger", test.challenger)):
        scored = Prediction.objects.filter(model_version=version, created_at__gte=test.created_at, created_at__lte=end)
        summary = scored.aggregate(n=Count("pk"), mean_probability=Avg("churn_probability"))
        before = scored.filter(
            customer_id=OuterRef("customer__customer_id"), created_at__lte=OuterRef("observed_at")
        ).order_by("-created_at", "-pk")
        pairs = list(
            Outcome.objects.filter(observed_at__gte=test.created_at)
            .annotate(probability=Subquery(before.values("churn_probability")[:1]))
            .filter(probability__isnull=False)
            .values_list("probability", "churned")
        )
        report = live_metrics(pairs)
        arms[name] = {
            "version": version.version,
            "predictions": summary["n"],
            "mean_probability": summary["mean_probability"],
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
    }
