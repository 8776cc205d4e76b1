from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from accounts.services import actor_for_user
from tests.factories import UserFactory


@pytest.fixture
def staff_actor(staff_user):
    return actor_for_user(staff_user)


@pytest.fixture
def colleague(department):
    """A second staff member of the same department, staff through the "staff" group."""
    user = UserFactory(username="bob", department=department)
    user.groups.add(Group.objects.get_or_create(name="staff")[0])
    return user


@pytest.fixture
def outsider(other_department):
    """Staff of another department."""
    return UserFactory(username="mallory", department=other_department, is_staff=True)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Users are created in most tests here; PBKDF2 would cost a quarter second each."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
