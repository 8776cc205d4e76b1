"""/metrics moves as operators expect after real requests (in-process; the multi-worker case is in test_live)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client, override_settings
from rest_framework.test import APIClient

from accounts.services import SYSTEM, api_key_create, api_key_revoke
from modelregistry.models import ModelStatus, ModelVersion
from tests.factories import UserFactory
from tests.ops.metrics_text import samples, value

pytestmark = pytest.mark.django_db

CUSTOMERS = "/api/v1/customers/"


def scrape(client: Client | None = None) -> dict:
    response = (client or Client()).get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return samples(response.content.decode())


def test_api_requests_are_counted_by_department_key_and_status(api_key):
    before = scrape()
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=api_key[1])
    for _ in range(3):
        assert client.get(CUSTOMERS).status_code == 200
    assert client.get(CUSTOMERS + "nobody/").status_code == 404
    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    labels = {"department": "retention", "api_key": "test-client"}
    assert delta("churn_api_requests_total", status="200", **labels) == 3
    assert delta("churn_api_requests_total", status="404", **labels) == 1
    # django-prometheus sees the same requests, the database queries and the key cache lookups.
    assert delta("django_http_responses_total_by_status_view_method_total", status="200") >= 3
    assert delta("django_db_execute_total") > 0
    assert delta("django_cache_get_total") >= 4


def test_jwt_callers_are_labelled_by_department_not_by_name(user):
    token = APIClient().post("/api/v1/auth/token/", {"username": "alice", "password": "correct-horse-battery"},
                             format="json")
    assert token.status_code == 200
    before = scrape()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token.json()['access']}")
    assert client.get(CUSTOMERS).status_code == 200
    after = scrape()
    labels = {"department": "retention", "api_key": "jwt", "status": "200"}
    assert value(after, "churn_api_requests_total", **labels) - value(before, "churn_api_requests_total", **labels) == 1
    assert not any(("api_key", "alice") in ls for (_, ls) in after)


def test_failed_authentications_are_counted_by_the_reason_the_client_was_given(department):
    revoked_key, revoked_secret = api_key_create(department=department, name="old-client")
    api_key_revoke(key_id=revoked_key.pk, actor=SYSTEM)
    UserFactory(username="bob", department=department)
    before = scrape()
    for _ in range(2):
        assert APIClient(HTTP_X_API_KEY="chp_000000000000_" + "x" * 43).get(CUSTOMERS).status_code == 401
    assert APIClient(HTTP_X_API_KEY=revoked_secret).get(CUSTOMERS).status_code == 401
    assert APIClient().get(CUSTOMERS).status_code == 401
    login = APIClient().post("/api/v1/auth/token/", {"username": "bob", "password": "wrong"}, format="json")
    assert login.status_code == 401
    assert Client().post("/admin/login/", {"username": "bob", "password": "wrong"}).status_code == 200
    after = scrape()

    def delta(reason: str) -> float:
        return value(after, "churn_auth_failures_total", reason=reason) - value(
            before, "churn_auth_failures_total", reason=reason
        )

    assert delta("invalid_api_key") == 2
    assert delta("api_key_revoked") == 1
    assert delta("not_authenticated") == 1
    assert delta("no_active_account") == 1
    assert delta("login_failed") == 1
    assert value(after, "churn_api_requests_total", department="none", api_key="anonymous", status="401") - value(
        before, "churn_api_requests_total", department="none", api_key="anonymous", status="401"
    ) == 5


def test_the_registry_active_model_is_read_at_scrape_time():
    assert value(scrape(), "churn_model_registry_active_versions") == 0
    ModelVersion.objects.create(
        version="20250101-ops", algorithm="logistic_regression", status=ModelStatus.ACTIVE,
        feature_spec_version="1", schema_version="1",
    )
    after = scrape()
    assert value(after, "churn_model_registry_active_versions") == 1
    assert value(after, "churn_model_registry_active_info", version="20250101-ops",
                 algorithm="logistic_regression") == 1


def test_container_cpu_is_reported_from_the_cgroup():
    from churn_platform.collectors import container_cpu

    if container_cpu() is None:
        pytest.skip("no readable cgroup CPU accounting on this machine")
    first = scrape()
    sum(i * i for i in range(200_000))  # burn a little CPU
    second = scrape()
    assert value(second, "churn_container_cpu_limit_cores") > 0
    used = "churn_container_cpu_usage_seconds_total"
    assert value(second, used) > value(first, used)


@pytest.fixture
def broker():  # type: ignore[no-untyped-def]
    url = settings.CELERY_BROKER_URL or ""
    if not url.startswith("redis://"):
        pytest.skip("needs a Redis broker (set REDIS_URL)")
    import redis

    client = redis.Redis.from_url(url)
    keys = ["batch", "batch\x06\x163", "training"]
    client.delete(*keys)
    yield client
    client.delete(*keys)


def test_queue_depth_counts_every_priority_list_of_the_queue(broker):
    broker.lpush("batch", "m1", "m2")
    broker.lpush("batch\x06\x163", "m3")
    broker.lpush("training", "m4")
    with override_settings(CELERY_TASK_ALWAYS_EAGER=False):
        found = scrape()
    assert value(found, "churn_celery_queue_depth", queue="batch") == 3
    assert value(found, "churn_celery_queue_depth", queue="training") == 1
    assert value(found, "churn_celery_queue_depth", queue="ingestion") == 0


def test_the_worker_status_reads_the_same_depths_and_an_unreachable_broker_as_unknown(broker):
    """One queue-depth reader (churn_infra.queues) behind the metric, worker_status and the batch watchdog."""
    from predictions.operations import queue_depths

    broker.lpush("batch", "m1", "m2")
    broker.lpush("batch\x06\x163", "m3")
    with override_settings(CELERY_TASK_ALWAYS_EAGER=False):
        assert queue_depths()["batch"] == value(scrape(), "churn_celery_queue_depth", queue="batch") == 3
    with override_settings(CELERY_TASK_ALWAYS_EAGER=False, CELERY_BROKER_URL="redis://127.0.0.1:9/0"):
        assert queue_depths() is None


def test_an_unreachable_broker_is_counted_and_does_not_break_the_scrape():
    before = scrape()
    with override_settings(CELERY_TASK_ALWAYS_EAGER=False, CELERY_BROKER_URL="redis://127.0.0.1:9/0"):
        after = scrape()
    assert not any(name == "churn_celery_queue_depth" for (name, _) in after)
    assert value(after, "churn_metrics_collector_errors_total", collector="celery_queue_depth") - value(
        before, "churn_metrics_collector_errors_total", collector="celery_queue_depth"
    ) == 1
    assert value(after, "churn_model_registry_active_versions") == 0


@override_settings(ALLOWED_HOSTS=["churn.example.com"])
def test_probes_and_metrics_answer_any_host_header_but_the_site_does_not():
    client = Client()
    for path in ("/healthz", "/metrics"):
        assert client.get(path, HTTP_HOST="10.1.2.3:8000").status_code == 200, path
    assert client.get("/readyz", HTTP_HOST="10.1.2.3:8000").status_code == 503  # no active model
    assert client.get(CUSTOMERS, HTTP_HOST="10.1.2.3:8000").status_code == 400


def test_probes_and_scrapes_stay_out_of_the_per_view_request_metrics():
    Client().get("/healthz", HTTP_HOST="10.1.2.3")
    found = scrape()
    views = {dict(labels).get("view") for (name, labels) in found
             if name == "django_http_responses_total_by_status_view_method_total"}
    assert not views & {"healthz", "readyz", "prometheus-django-metrics"}


@override_settings(METRICS_TOKEN="scrape-token-123")
def test_metrics_token_is_required_when_set():
    client = Client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-123")
    assert response.status_code == 200
    assert b"churn_api_requests_total" in response.content
