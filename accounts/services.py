"""Writes for accounts: API keys and audit entries. Every state change writes its audit row."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.contrib.auth.password_validation import validate_password
from django.core.cache import cache
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import ALL_SCOPES, DEFAULT_KEY_SCOPES, ApiKey, AuditLogEntry, AuditOutcome, Department, Membership
from churn_infra.errors import InputError

KEY_PREFIX_MARK = "chp"


@dataclass(frozen=True)
class Actor:
    """Whoever makes a request: a user (JWT or session), an API key, or the system itself."""

    user: AbstractBaseUser | None = None
    api_key_id: int | None = None
    api_key_name: str = ""
    department_id: int | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    department_name: str = ""
    ip: str | None = None
    request_id: str | None = None
    is_superuser: bool = False

    @property
    def label(self) -> str:
        if self.api_key_id is not None:
            return f"api-key:{self.api_key_name}#{self.api_key_id}"
        if self.user is not None:
            return f"user:{self.user.get_username()}"
        return "system"

    @property
    def user_id(self) -> int | None:
        return self.user.pk if self.user is not None else None

    def can_see_department(self, department_id: int | None) -> bool:
        return self.is_superuser or (department_id is not None and department_id == self.department_id)


SYSTEM = Actor(scopes=ALL_SCOPES, is_superuser=True)


def public_actor_label(label: str) -> str:
    """An actor label fit for company-wide answers (outcomes, the model registry): the kind only.

    ``api-key:<name>#<id>`` becomes ``api-key`` and ``user:<username>`` becomes ``user``, so that
    key labels, user names and internal ids never reach another department; the full label stays
    in the department's audit log and the admin. Labels that name a source or "system" are kept.
    """
    kind, sep, _rest = label.partition(":")
    return kind if sep and kind in {"api-key", "user"} else label


def user_scopes(user: AbstractBaseUser) -> frozenset[str]:
    if getattr(user, "is_superuser", False) or getattr(user, "is_staff", False):
        return ALL_SCOPES
    return frozenset(DEFAULT_KEY_SCOPES)


def actor_for_user(user: AbstractBaseUser, *, ip: str | None = None, request_id: str | None = None) -> Actor:
    membership = getattr(user, "membership", None) if hasattr(user, "membership") else None
    return Actor(
        user=user,
        department_id=membership.department_id if membership is not None else None,
        department_name=membership.department.name if membership is not None else "",
        scopes=user_scopes(user),
        ip=ip,
        request_id=request_id,
        is_superuser=bool(getattr(user, "is_superuser", False)),
    )


# --- API keys -------------------------------------------------------------------------------


def _hash_secret(salt: str, secret: str) -> str:
    # A fast salted hash is right here: the secret has 256 bits of entropy, so there is nothing to
    # brute-force, and a slow password hash would cost ~200 ms on every API request.
    return hashlib.sha512(f"{salt}:{secret}".encode()).hexdigest()


def split_key(raw: str) -> tuple[str, str] | None:
    """'chp_<prefix>_<secret>' to (prefix, secret), or None when the shape is wrong."""
    parts = raw.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX_MARK or len(parts[1]) != 12 or not (20 <= len(parts[2]) <= 100):
        return None
    return parts[1], parts[2]


def secret_matches(key_salt: str, key_hash: str, secret: str) -> bool:
    return hmac.compare_digest(_hash_secret(key_salt, secret), key_hash)


def api_key_cache_key(prefix: str) -> str:
    return f"apikey:{prefix}"


@transaction.atomic
def api_key_create(
    *,
    department: Department,
    name: str,
    actor: Actor = SYSTEM,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
    ip_allowlist: list[str] | None = None,
    rate_limit_per_minute: int | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its plaintext, which is never stored nor shown again."""
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    key = ApiKey(
        department=department,
        name=name,
        prefix=prefix,
        salt=salt,
        secret_hash=_hash_secret(salt, secret),
        scopes=sorted(scopes) if scopes is not None else list(DEFAULT_KEY_SCOPES),
        expires_at=expires_at,
        ip_allowlist=ip_allowlist or [],
        rate_limit_per_minute=rate_limit_per_minute,
        created_by=actor.user if actor.user is not None and actor.user.pk else None,
    )
    key.full_clean()
    key.save()
    audit_record(
        actor=actor,
        action="api_key.create",
        obj=key,
        department_id=department.pk,
        details={"name": name, "scopes": key.scopes, "expires_at": expires_at.isoformat() if expires_at else None},
    )
    return key, f"{KEY_PREFIX_MARK}_{prefix}_{secret}"


@transaction.atomic
def api_key_revoke(*, key_id: int, actor: Actor, reason: str = "") -> ApiKey:
    key = ApiKey.objects.select_for_update().get(pk=key_id)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.revoked_reason = reason[:200]
        key.save(update_fields=["revoked_at", "revoked_reason", "updated_at"])
        audit_record(
            actor=actor, action="api_key.revoke", obj=key, department_id=key.department_id, details={"reason": reason}
        )
    # Forget the cached record now and again after commit, so no request in between can put the
    # pre-revocation record back for long.
    cache.delete(api_key_cache_key(key.prefix))
    transaction.on_commit(lambda: cache.delete(api_key_cache_key(key.prefix)))
    return key


def api_key_forget_cached(*, department_id: int | None = None, key_ids: list[int] | None = None) -> None:
    """Drop cached key records so that changed limits, scopes or expiry apply at once."""
    qs = ApiKey.objects.all()
    if department_id is not None:
        qs = qs.filter(department_id=department_id)
    if key_ids is not None:
        qs = qs.filter(pk__in=key_ids)
    prefixes = list(qs.values_list("prefix", flat=True))
    cache.delete_many([api_key_cache_key(p) for p in prefixes])


def api_key_touch(*, key_id: int, ip: str | None) -> None:
    ApiKey.objects.filter(pk=key_id).update(last_used_at=timezone.now(), last_used_ip=ip)


# --- staff members -----------------------------------------------------------------------------

STAFF_GROUP = "staff"  # members of this group use the staff pages (Django staff and superusers do too)


class StaffMemberError(InputError):
    def __str__(self) -> str:
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in self.errors.items())


@dataclass(frozen=True)
class StaffMemberAdded:
    user: Any
    created: bool
    password: str | None  # set only when one was generated, to be shown once


@transaction.atomic
def staff_member_add(
    *,
    username: str,
    department_name: str,
    actor: Actor,
    email: str = "",
    password: str | None = None,
    generate_password: bool = True,
) -> StaffMemberAdded:
    """Make a user a staff member of a department in one step: the user, the "staff" group, the membership.

    An existing user keeps their password unless one is given; a new user gets the given password or,
    with generate_password, a random one returned once. They do not get Django's is_staff: the admin
    stays for operators.
    """
    username = (username or "").strip()
    errors: dict[str, list[str]] = {}
    if not username:
        errors["username"] = ["A user name is required."]
    department = Department.objects.filter(name=department_name).first()
    if department is None:
        errors["department"] = [f"No department named {department_name!r}."]
    if errors:
        raise StaffMemberError(errors)
    user_model = get_user_model()
    user = user_model.objects.filter(username=username).first()
    created = user is None
    generated = None
    if created:
        user = user_model(username=username, email=email)
        if password is None and generate_password:
            password = generated = secrets.token_urlsafe(12)
    if password is not None:
        try:
            validate_password(password, user)
        except DjangoValidationError as exc:
            raise StaffMemberError({"password": list(exc.messages)}) from None
        user.set_password(password)
    elif created:
        user.set_unusable_password()
    if email:
        user.email = email
    user.is_active = True
    user.save()
    group, _ = Group.objects.get_or_create(name=STAFF_GROUP)
    user.groups.add(group)
    Membership.objects.update_or_create(user=user, defaults={"department": department})
    audit_record(
        actor=actor,
        action="staff_member.add",
        obj=user,
        department_id=department.pk,
        details={"username": username, "created": created, "department": department.name},
    )
    return StaffMemberAdded(user=user, created=created, password=generated)


# --- audit log ------------------------------------------------------------------------------


def audit_record(
    *,
    actor: Actor,
    action: str,
    obj: Any = None,
    object_type: str = "",
    object_id: str | int = "",
    outcome: str = AuditOutcome.SUCCESS,
    details: dict[str, Any] | None = None,
    department_id: int | None = None,
) -> AuditLogEntry:
    """Write one audit entry. Call it inside the transaction of the change it records."""
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or obj.pk
    values = _audit_values(actor=actor, action=action, object_type=object_type, object_id=object_id, outcome=outcome,
                           details=details, department_id=department_id)  # fmt: skip
    return AuditLogEntry.objects.create(**values)


def _audit_values(
    *, actor: Actor, action: str, object_type: str, object_id: str | int, outcome: str,
    details: dict[str, Any] | None, department_id: int | None,
) -> dict[str, Any]:
    """An entry's column values: the one place both writers below take them from."""
    return {
        "actor_user_id": actor.user_id,
        "actor_api_key_id": actor.api_key_id,
        "actor_label": actor.label[:200],
        "department_id": department_id if department_id is not None else actor.department_id,
        "action": action,
        "object_type": object_type,
        "object_id": str(object_id)[:100],
        "ip_address": actor.ip,
        "request_id": (actor.request_id or "")[:64],
        "outcome": outcome,
        "details": details or {},
    }


def audit_insert_select(
    *, source: str, actions: tuple[str, str, str], actor: Actor, object_type: str, object_id: str,
    details: dict[str, Any] | None = None, department_id: int | None = None,
) -> tuple[str, list[Any]]:
    """SQL and parameters inserting one audit entry per row of ``source`` (a CTE of the caller's
    statement with a boolean ``flag`` column): action ``actions[1]`` where the flag is true, else
    ``actions[2]``; ``actions[0]`` is the flag's column name.

    For a write that must cost one round trip (a scoring call storing its customer, PostgreSQL
    only): the entry is written by the same statement as the change, hence in its transaction,
    with the same values audit_record would give it.
    """
    flag, when_true, when_false = actions
    values = _audit_values(actor=actor, action="", object_type=object_type, object_id=object_id,
                           outcome=AuditOutcome.SUCCESS, details=details, department_id=department_id)  # fmt: skip
    values["details"] = json.dumps(values["details"])
    params: list[Any] = [timezone.now()]
    for name, value in values.items():
        params += [when_true, when_false] if name == "action" else [value]
    return _audit_insert_select_sql(source, flag, tuple(values)), params


_AUDIT_CASTS = {"details": "::jsonb", "ip_address": "::inet"}


@functools.cache
def _audit_insert_select_sql(source: str, flag: str, names: tuple[str, ...]) -> str:
    # Built once per (source, flag): this is on the scoring call's path.
    fields = {f.attname: f for f in AuditLogEntry._meta.concrete_fields}
    quote = connection.ops.quote_name
    columns, cells = [quote(fields["created_at"].column)], ["%s"]
    for name in names:
        columns.append(quote(fields[name].column))
        cells.append(f"CASE WHEN {quote(flag)} THEN %s ELSE %s END" if name == "action"
                     else f"%s{_AUDIT_CASTS.get(name, '')}")  # fmt: skip
    # Column names come from the model's metadata and the caller's CTE, quoted; values are parameters.
    return (f"INSERT INTO {quote(AuditLogEntry._meta.db_table)} ({', '.join(columns)}) "  # noqa: S608
            f"SELECT {', '.join(cells)} FROM {quote(source)}")  # fmt: skip
