from typing import Any

from django.apps import AppConfig

from churn_infra import metrics


def _count_outcomes(*, outcomes: list[Any], source: str, **_: Any) -> None:
    """churn_outcomes_recorded_total: the observed churn the alerts compare with the predicted one."""
    churned = sum(1 for o in outcomes if o.churned)
    if churned:
        metrics.OUTCOMES_RECORDED.labels("true", source).inc(churned)
    if len(outcomes) - churned:
        metrics.OUTCOMES_RECORDED.labels("false", source).inc(len(outcomes) - churned)


class CustomersConfig(AppConfig):
    name = "customers"
    verbose_name = "Customers and outcomes"

    def ready(self) -> None:
        from customers.signals import outcomes_recorded

        outcomes_recorded.connect(_count_outcomes, dispatch_uid="customers.count_outcomes")
