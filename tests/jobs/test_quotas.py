"""Per-department limits on batch jobs (429 with Retry-After) and the upload refused by its declared length."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import api_key_create
from predictions.models import BatchJob, BatchJobStatus

pytestmark = pytest.mark.django_db

URL = "/api/v1/predictions/jobs/"


def test_a_department_may_have_two_jobs_queued_or_running(
    active_version, store_customers, key_client, other_department
):
    store_customers(5)
    # The jobs stay queued: their start is sent only after a commit that never comes in this test.
    assert key_client.post(URL, {"scope": "all"}, format="json").status_code == 202
    assert key_client.post(URL, {"scope": "all"}, format="json").status_code == 202

    refused = key_client.post(URL, {"scope": "all"}, format="json")

    assert refused.status_code == 429
    assert refused.json()["code"] == "quota_exceeded"
    assert "at most 2 at once" in refused.json()["detail"]
    assert int(refused["Retry-After"]) > 0
    assert BatchJob.objects.count() == 2
    # another department is not held up
    _, other = api_key_create(department=other_department, name="other")
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=other)
    assert client.post(URL, {"scope": "all"}, format="json").status_code == 202
    # once one has finished, there is room again
    first = BatchJob.objects.exclude(department=other_department).order_by("pk").first()
    first.status = BatchJobStatus.SUCCEEDED
    first.save(update_fields=["status"])
    assert key_client.post(URL, {"scope": "all"}, format="json").status_code == 202


def test_jobs_per_hour_are_limited_with_the_time_to_wait(settings, active_version, store_customers, key_client):
    settings.BATCH_JOBS_MAX_ACTIVE_PER_DEPARTMENT = 0
    settings.BATCH_JOBS_MAX_PER_HOUR_PER_DEPARTMENT = 3
    store_customers(5)
    for _ in range(3):
        assert key_client.post(URL, {"scope": "all"}, format="json").status_code == 202
    BatchJob.objects.update(created_at=timezone.now() - timedelta(minutes=50))

    refused = key_client.post(URL, {"scope": "all"}, format="json")

    assert refused.status_code == 429
    assert "in the last hour" in refused.json()["detail"]
    assert 9 * 60 <= int(refused["Retry-After"]) <= 10 * 60 + 1
    BatchJob.objects.update(created_at=timezone.now() - timedelta(minutes=61))
    assert key_client.post(URL, {"scope": "all"}, format="json").status_code == 202


def test_an_upload_is_refused_by_its_declared_length_before_it_is_read(settings, active_version, key_client):
    settings.BATCH_JOB_MAX_UPLOAD_BYTES = 1024 * 1024
    upload = SimpleUploadedFile("ids.csv", b"customerID\nA-1\n")
    # The body is small; the declared length (2 GiB) is what the server must go by.
    response = key_client.post(URL, {"file": upload}, format="multipart", CONTENT_LENGTH=str(2 * 1024**3))
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    assert not BatchJob.objects.exists()
