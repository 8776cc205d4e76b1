"""The one rule for a caller's address, used by lock-outs, rate limits, key allowlists, audit
entries and the metrics allowlist.

Behind TRUSTED_PROXY_COUNT reverse proxies (the Kubernetes ingress is one) each proxy appends
the address it saw to X-Forwarded-For, so the client is the TRUSTED_PROXY_COUNT-th entry from
the right; anything further left was written by the client and is ignored. With no trusted
proxy (the default) the header is ignored and the socket's peer address is the caller.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings


def client_address(meta: Mapping[str, Any]) -> str | None:
    """The caller's address from a request's META (or a WSGI environ)."""
    hops = settings.TRUSTED_PROXY_COUNT
    if hops:
        forwarded = [p.strip() for p in str(meta.get("HTTP_X_FORWARDED_FOR", "")).split(",") if p.strip()]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return meta.get("REMOTE_ADDR")


def address_in(address: str | None, networks: Iterable[str]) -> bool:
    """Whether the address lies in one of the networks (CIDRs or single addresses)."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net, strict=False) for net in networks)


def metrics_refusal(meta: Mapping[str, Any]) -> tuple[int, str] | None:
    """Why a /metrics scrape is refused, as (status, text), or None when it may be served.

    One rule for the web /metrics and the worker's metrics server: the scraper's address must be
    in METRICS_ALLOWED_NETWORKS (default: loopback and private networks), and when METRICS_TOKEN
    is set the scrape must send ``Authorization: Bearer <token>``.
    """
    address = client_address(meta)
    if not address_in(address, settings.METRICS_ALLOWED_NETWORKS):
        return 403, f"metrics are not served to {address}\n"
    token = settings.METRICS_TOKEN
    if token:
        sent = str(meta.get("HTTP_AUTHORIZATION", ""))
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            return 401, "metrics need the scrape token\n"
    return None
