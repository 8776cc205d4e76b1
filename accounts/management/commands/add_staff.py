"""`manage.py add_staff USER --department D`: a staff member in one step."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from accounts.services import SYSTEM, StaffMemberError, staff_member_add


class Command(BaseCommand):
    help = (
        "Make USER a staff member of a department: creates the user when missing, adds them to the staff "
        "group and the department. A new user gets a random password, printed once, unless "
        "--password-env names a variable holding one."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--department", required=True, help="The department's name (it must exist).")
        parser.add_argument("--email", default="")
        parser.add_argument("--password-env", help="Environment variable holding the password (never an argument).")

    def handle(self, *args: Any, **opts: Any) -> None:
        password = None
        if opts["password_env"]:
            password = os.environ.get(opts["password_env"])
            if not password:
                raise CommandError(f"{opts['password_env']} is not set or empty.")
        try:
            added = staff_member_add(
                username=opts["username"], department_name=opts["department"], email=opts["email"],
                password=password, actor=SYSTEM,
            )  # fmt: skip
        except StaffMemberError as exc:
            raise CommandError(str(exc)) from None
        verb = "Created" if added.created else "Updated"
        self.stdout.write(f"{verb} staff member {added.user.username} in {opts['department']}.")
        if added.password:
            self.stdout.write(f"Password (shown once): {added.password}")
