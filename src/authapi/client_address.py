"""The client's address: the socket peer, or what trusted proxies say it is.

X-Forwarded-For is believed only when the peer is one of `AUTHAPI_TRUSTED_PROXIES`,
and then only as far as the chain of trusted proxies goes: walking the header from the
right, the first address that is not a trusted proxy is the client. Anything a client
writes into the header itself sits further left and is never reached.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from starlette.requests import HTTPConnection

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in trusted)


def _is_trusted(address: str, networks: Iterable[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


@dataclass(frozen=True)
class Origin:
    """Where a request came from, as sessions and the audit trail record it."""

    ip: str
    user_agent: str | None


def request_origin(request: HTTPConnection, trusted_proxies: list[str]) -> Origin:
    user_agent = request.headers.get("user-agent")
    return Origin(
        ip=client_address(request, trusted_proxies),
        user_agent=user_agent[:512] if user_agent else None,
    )


def client_address(request: HTTPConnection, trusted_proxies: list[str]) -> str:
    peer = request.client.host if request.client else "unknown"
    if not trusted_proxies:
        return peer
    networks = _networks(tuple(trusted_proxies))
    if not _is_trusted(peer, networks):
        return peer
    hops = [
        hop.strip()
        for header in request.headers.getlist("x-forwarded-for")
        for hop in header.split(",")
    ]
    for hop in reversed(hops):
        if not _is_trusted(hop, networks):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # garbage where an address should be: trust nothing of it
    return peer


def forwarded_https(request: HTTPConnection, trusted_proxies: list[str]) -> bool:
    """Whether a trusted proxy says the client reached it over HTTPS (X-Forwarded-Proto,
    the value its nearest hop wrote); from any other peer the header means nothing."""
    peer = request.client.host if request.client else None
    if peer is None or not trusted_proxies:
        return False
    if not _is_trusted(peer, _networks(tuple(trusted_proxies))):
        return False
    proto = ",".join(request.headers.getlist("x-forwarded-proto")).rsplit(",", 1)[-1]
    return proto.strip().lower() == "https"
