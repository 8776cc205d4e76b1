from __future__ import annotations

from celery import shared_task


# Not retried automatically: a second attempt would register a second version.
@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=1800, time_limit=2000)
def train_model(
    *,
    data_path: str | None = None,
    activate: bool = False,
    algorithm: str = "auto",
    seed: int = 42,
    requested_by_user_id: int | None = None,
) -> str:
    """Train on a file or on the stored customers; returns the new version label."""
    from django.contrib.auth import get_user_model

    from accounts.services import SYSTEM, actor_for_user
    from modelregistry.services import model_train, training_data_from_file, training_data_from_store

    user = get_user_model().objects.filter(pk=requested_by_user_id).first() if requested_by_user_id else None
    actor = actor_for_user(user) if user is not None else SYSTEM
    data = training_data_from_file(data_path) if data_path else training_data_from_store()
    return model_train(data=data, actor=actor, activate=activate, algorithm=algorithm, seed=seed).version


# --- retraining (queue "training") -----------------------------------------------------------
# Time limits come with each message (RETRAIN_SOFT_TIME_LIMIT / RETRAIN_TIME_LIMIT, see
# modelregistry.retraining); the decorator's are the fallback.


@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=3000, time_limit=3300)
def retrain_model(*, run_id: int) -> str | None:
    """Run a queued retraining; safe to deliver twice (a finished or live run is left alone)."""
    from modelregistry.retraining import retraining_run_execute

    run = retraining_run_execute(run_id=run_id)
    return run.decision or run.status if run is not None else None


@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=600, time_limit=660)
def evaluate_retraining_triggers() -> list[str]:
    """Measure drift, live accuracy and confidence; store the evaluations; retrain if one fires."""
    from modelregistry.retraining import retraining_triggers_evaluate

    return [f"{e.kind}:{e.decision}" for e in retraining_triggers_evaluate()]


@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=120, time_limit=150)
def retrain_scheduled() -> str:
    """The monthly retraining."""
    from modelregistry.retraining import retraining_scheduled

    return retraining_scheduled().decision
