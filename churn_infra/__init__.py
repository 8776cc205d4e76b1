"""Infrastructure helpers the apps share: database, metrics registry, JSON API helpers, pagination,
the error base classes and handler, outages, dates, CSV cells, client addresses, Redis, charts.

The bottom layer but one (only churn_ml is below it): nothing here imports an app or the wiring
(churn_platform). See the layers contract in pyproject.toml.
"""
