"""Data source passwords and tokens, encrypted at rest with Fernet.

Keys come from DATA_SOURCE_ENCRYPTION_KEY (comma-separated Fernet keys: the first encrypts, every
one decrypts, so a key can be rotated by putting the new one first). Outside production, with no
key set, one is derived from DJANGO_SECRET_KEY so that ``make run`` works; production refuses to
store or read a secret without a real key.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class SecretUnreadable(Exception):
    """The stored secret cannot be decrypted with the configured keys."""


def _fernet() -> MultiFernet:
    keys = [k.strip() for k in settings.DATA_SOURCE_ENCRYPTION_KEYS if k.strip()]
    if not keys:
        if settings.PRODUCTION:
            raise ImproperlyConfigured(
                "DATA_SOURCE_ENCRYPTION_KEY must be set in production to store data source passwords; make one "
                "with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
            )
        digest = hashlib.sha256(b"churn-data-source-secrets:" + settings.SECRET_KEY.encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATA_SOURCE_ENCRYPTION_KEY holds an invalid Fernet key: {exc}") from exc


def encrypt_secret(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode() if plaintext else ""


def decrypt_secret(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "The stored password cannot be decrypted with DATA_SOURCE_ENCRYPTION_KEY; set the password again."
        ) from None
