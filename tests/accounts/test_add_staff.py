"""Adding a staff member takes one step: a command or one admin page."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from accounts.models import AuditLogEntry, Membership

pytestmark = pytest.mark.django_db


def test_add_staff_command_creates_a_user_who_can_use_the_staff_pages(client, department):
    out = io.StringIO()

    call_command("add_staff", "carol", "--department", department.name, "--email", "carol@example.com", stdout=out)

    password = out.getvalue().split("Password (shown once): ")[1].strip()
    user = get_user_model().objects.get(username="carol")
    assert Membership.objects.get(user=user).department == department
    assert not user.is_staff  # staff pages, not the admin
    assert client.login(username="carol", password=password)
    assert client.get("/staff/").status_code == 200
    assert client.get("/admin/").status_code == 302
    assert AuditLogEntry.objects.filter(action="staff_member.add", department_id=department.pk).exists()


def test_add_staff_names_a_missing_department():
    with pytest.raises(CommandError, match="No department named 'nowhere'"):
        call_command("add_staff", "dave", "--department", "nowhere")


def test_the_admin_adds_a_staff_member_on_one_page(client, admin_user, department):
    client.force_login(admin_user)
    assert "Add a staff member" in client.get("/admin/accounts/membership/").content.decode()

    response = client.post("/admin/accounts/membership/add-staff/", {
        "username": "erin", "department": department.pk, "password": "a-long-enough-passphrase-9",
    }, follow=True)  # fmt: skip

    assert "Erin is a staff member of retention" in response.content.decode()  # the admin capitalises
    assert client.login(username="erin", password="a-long-enough-passphrase-9")
    assert client.get("/staff/").status_code == 200
