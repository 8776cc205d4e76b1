from __future__ import annotations

import pytest

# Django-dependent imports live inside the fixtures, so that tests/churn_ml also runs with
# `-p no:django` and no settings at all.


@pytest.fixture(autouse=True)
def _clear_cache(request):
    """Rate-limit counters and cached keys live in the shared cache; start every test clean."""
    if "churn_ml" in request.node.nodeid.split("::")[0].split("/"):
        yield
        return
    from django.core.cache import cache

    cache.clear()
    from modelregistry import loader

    loader.forget_local()
    loader._current = None
    from accounts import authentication

    authentication._last_touch.clear()  # per-process "last use recorded" times, keyed by key id
    from modelregistry import shadow

    shadow.forget_local()
    shadow._config = None
    yield
    cache.clear()


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def department(db):
    from tests.factories import DepartmentFactory

    return DepartmentFactory(name="retention")


@pytest.fixture
def other_department(db):
    from tests.factories import DepartmentFactory

    return DepartmentFactory(name="finance")


@pytest.fixture
def api_key(department):
    """(ApiKey, plaintext) with the default scopes."""
    from accounts.services import api_key_create

    return api_key_create(department=department, name="test-client")


@pytest.fixture
def key_client(api_key):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_X_API_KEY=api_key[1])
    return client


@pytest.fixture
def user(department):
    from tests.factories import UserFactory

    return UserFactory(username="alice", department=department)


@pytest.fixture
def staff_user(department):
    from tests.factories import UserFactory

    return UserFactory(username="operator", department=department, is_staff=True)


@pytest.fixture
def admin_user(db):
    from tests.factories import UserFactory

    return UserFactory(username="root", is_staff=True, is_superuser=True)


# --- models ---------------------------------------------------------------------------------

DEMO_CSV = "data/telco_customer_churn.csv"


@pytest.fixture(scope="session")
def demo_training_data():
    from churn_ml.schema import load_telco_csv

    return load_telco_csv(DEMO_CSV)


@pytest.fixture(scope="session")
def trained_model(demo_training_data):
    """A logistic model trained once per test session on the bundled Telco data."""
    from churn_ml.training import train

    frame, labels = demo_training_data
    return train(frame, labels, seed=42, algorithm="logistic")


@pytest.fixture(scope="session")
def weak_model(demo_training_data):
    """A clearly worse model: trained with the labels of every high-charge customer replaced by coin flips."""
    import dataclasses

    import numpy as np

    from churn_ml.evaluation import roc_auc
    from churn_ml.training import train

    frame, labels = demo_training_data
    rng = np.random.default_rng(7)
    noisy = labels.copy()
    high = frame["monthly_charges"].to_numpy() > 70
    noisy[high] = rng.random(int(high.sum())) < 0.27
    model = train(frame, noisy, seed=7, algorithm="logistic")
    # Its held-out rows keep their true labels: the gate judges it on what really happened.
    truth = labels[model.test_indices]
    metrics = {**model.metrics, "roc_auc": round(roc_auc(model.scorer.predict_proba(model.holdout[0]), truth), 6)}
    return dataclasses.replace(model, holdout=(model.holdout[0], truth), metrics=metrics)


@pytest.fixture
def register_model(db, trained_model):
    """register_model(activate=True, roc_auc=None, trained=None) -> ModelVersion; metrics can be overridden."""
    from modelregistry.services import model_promote, model_version_register

    def make(*, activate: bool = True, roc_auc: float | None = None, trained=None):  # type: ignore[no-untyped-def]
        version = model_version_register(trained=trained or trained_model, training_source="tests")
        if roc_auc is not None:
            version.metrics = {**version.metrics, "roc_auc": roc_auc}
            version.save(update_fields=["metrics"])
        if activate:
            from accounts.services import SYSTEM

            version = model_promote(version=version.version, actor=SYSTEM)
        return version

    return make


@pytest.fixture
def active_version(register_model):
    return register_model(activate=True)
