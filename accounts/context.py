"""The Actor of a request (DRF or plain Django: API views, admin, staff pages), built once per request.

The one place that turns a request into an Actor, so every audit entry names the caller's
address by the same rule (churn_infra.client_address, TRUSTED_PROXY_COUNT).
"""

from __future__ import annotations

from typing import Any

from accounts.authentication import client_ip
from accounts.services import Actor, actor_for_user


def actor_for_request(request: Any) -> Actor:
    cached = getattr(request, "_churn_actor", None)
    if cached is not None:
        return cached
    if isinstance(getattr(request, "auth", None), Actor):  # an API key (DRF); Django requests have no auth
        actor = request.auth
    elif request.user is not None and getattr(request.user, "is_authenticated", False):
        actor = actor_for_user(request.user, ip=client_ip(request), request_id=getattr(request, "request_id", None))
    else:
        actor = Actor(ip=client_ip(request), request_id=getattr(request, "request_id", None))
    request._churn_actor = actor
    return actor
