"""Schemathesis hooks for tests/ops/test_schemathesis.py (loaded through SCHEMATHESIS_HOOKS).

The run's own API key must survive the run: a generated revoke or delete of that very key is
sent to a key that does not exist instead (404), so every other operation stays authenticated.
"""

from __future__ import annotations

import os

import schemathesis

PROTECTED_KEY_ID = os.environ.get("SCHEMATHESIS_PROTECTED_KEY_ID", "")


@schemathesis.hook
def before_call(context, case, kwargs):  # type: ignore[no-untyped-def]
    if "/api-keys/{id}" in case.operation.path and str((case.path_parameters or {}).get("id")) == PROTECTED_KEY_ID:
        case.path_parameters = {**case.path_parameters, "id": 2_000_000_000}
