from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.services import api_key_create
from tests.factories import DepartmentFactory, UserFactory


@pytest.fixture(autouse=True)
def _clear_cache():
    """Rate-limit counters and cached keys live in the shared cache; start every test clean."""
    cache.clear()
    from modelregistry import loader

    loader.forget_local()
    loader._current = None
    yield
    cache.clear()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def department(db):
    return DepartmentFactory(name="retention")


@pytest.fixture
def other_department(db):
    return DepartmentFactory(name="finance")


@pytest.fixture
def api_key(department):
    """(ApiKey, plaintext) with the default scopes."""
    return api_key_create(department=department, name="test-client")


@pytest.fixture
def key_client(api_key) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=api_key[1])
    return client


@pytest.fixture
def user(department):
    return UserFactory(username="alice", department=department)


@pytest.fixture
def staff_user(department):
    return UserFactory(username="operator", department=department, is_staff=True)


@pytest.fixture
def admin_user(db):
    return UserFactory(username="root", is_staff=True, is_superuser=True)
