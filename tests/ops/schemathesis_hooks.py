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


# gunicorn's own refusal of an over-long request line (over limit_request_line, 8,190 bytes) is an HTML
# 400 written before Django sees the request; the contract documents it as the one non-JSON error. Only
# that answer is accepted; every other failure, including any other 400 with HTML, still fails the run.
GUNICORN_REFUSALS = ("request line is too large", "limit request headers")


@schemathesis.hook
def filter_failure(context, failure, case, response):  # type: ignore[no-untyped-def]
    if response is None or response.status_code != 400:
        return True
    text = (response.text or "").lower()
    return not (text.lstrip().startswith("<html>") and any(refusal in text for refusal in GUNICORN_REFUSALS))
