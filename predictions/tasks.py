from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True, reject_on_worker_lost=True, autoretry_for=(ConnectionError,), retry_backoff=True,
             max_retries=5)
def rescore_customers(*, customer_ids: list[str], reason: str = "") -> int:
    """Score stored customers again after their data changed. Safe to repeat: it only adds history."""
    from predictions.services import predictions_score_stored

    return predictions_score_stored(customer_ids=customer_ids)
