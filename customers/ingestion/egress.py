"""Where data sources may connect: public addresses only, unless the operator allows more.

A data source is configured by API clients, and whatever it reads comes back to them (stored
customers, rejected rows, error messages), so a source must never reach the platform's own
network: loopback, private, shared (CGNAT), link-local (cloud metadata at 169.254.169.254,
fd00:ec2::254), unique-local, multicast, reserved and unspecified addresses are refused, in
every spelling (IPv4-mapped and NAT64 IPv6, integer, octal and hex IPv4, short forms, trailing
dots). Names are resolved and every address they resolve to must pass.

The check runs when a source is saved and again when it connects; drivers then connect to the
address that was checked (``hostaddr`` for libpq, the IP itself otherwise), so a name that
re-resolves elsewhere between the check and the connection (DNS rebinding) does not get through.

``DATA_SOURCE_ALLOWED_NETWORKS`` (comma-separated CIDRs, addresses or host names) lets the
operator allow more, e.g. ``10.20.0.0/16,crm-replica.internal``. A host allowed by name is
connected to by that name.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class EgressRefused(Exception):
    """The host may not be reached by a data source; the message names the host, never a port."""


@dataclass(frozen=True)
class Allowance:
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    names: frozenset[str]


def normalise_name(host: str) -> str:
    """Lower case, no brackets, no zone id, no trailing dots: the name as DNS and the allowlist compare it."""
    name = host.strip().strip("[]").lower().rstrip(".")
    return name.split("%", 1)[0]


def literal_address(host: str) -> IPAddress | None:
    """The address a host written as an IP literal means, in any spelling; None for a name."""
    name = normalise_name(host)
    if not name:
        return None
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        pass
    if ":" in name:
        return None
    # inet_aton reads what the C resolver (and so every driver) reads: 2852039166, 0xa9fea9fe,
    # 0251.0376.0251.0376, 127.1. A name with letters other than hex digits is not one of these.
    try:
        return ipaddress.IPv4Address(socket.inet_aton(name))
    except OSError:
        return None


def allowance() -> Allowance:
    networks, names = [], set()
    for entry in settings.DATA_SOURCE_ALLOWED_NETWORKS:
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(normalise_name(entry))
    return Allowance(tuple(networks), frozenset(names))


def _embedded(ip: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped or NAT64 IPv6 address (what a connection to it reaches)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def is_internal(ip: IPAddress) -> bool:
    """Loopback, private, shared, link-local, unique-local, multicast, reserved or unspecified."""
    ip = _embedded(ip)
    return (
        not ip.is_global
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_private
        or ip.is_unspecified
    )


def _allowed(ip: IPAddress, rules: Allowance) -> bool:
    candidates = {ip, _embedded(ip)}
    return any(c.version == net.version and c in net for c in candidates for net in rules.networks)


def resolve(host: str, port: int | None) -> list[IPAddress]:
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(normalise_name(host), port or None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise EgressRefused(f"Could not resolve {host}.") from None
    seen: dict[str, IPAddress] = {}
    for *_, sockaddr in infos:
        text = str(sockaddr[0]).split("%", 1)[0]
        seen.setdefault(text, ipaddress.ip_address(text))
    return list(seen.values())


def checked_address(host: str, port: int | None = None) -> str:
    """The address to connect to for ``host``, checked against the policy (the host itself when allowed by name).

    Raises EgressRefused when the host does not resolve or any of its addresses is internal and
    not allowed.
    """
    if not host or not host.strip():
        raise EgressRefused("No host is configured.")
    rules = allowance()
    name = normalise_name(host)
    if name in rules.names:
        return name
    addresses = resolve(host, port)
    refused = [ip for ip in addresses if is_internal(ip) and not _allowed(ip, rules)]
    if refused:
        raise EgressRefused(
            f"{host} is, or resolves to, an internal address ({refused[0]}), which data sources may not reach; "
            "an operator can allow it with DATA_SOURCE_ALLOWED_NETWORKS."
        )
    return str(addresses[0])
