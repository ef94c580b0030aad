"""The client's address: the socket peer, or what trusted proxies say it is.

X-Forwarded-For is believed only when the peer is one of `AUTHAPI_TRUSTED_PROXIES`,
and then only as far as the chain of trusted proxies goes: walking the header from the
right, the first address that is not a trusted proxy is the client. Anything a client
writes into the header itself sits further left and is never reached.

Whatever is recorded is bounded and canonical: an IPv6 zone id (`fe80::1%eth0`) is
dropped, since it names an interface of the sender's host, means nothing here, and has
no length limit; a peer that is not an IP address at all is cut to what a column holds.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from starlette.requests import HTTPConnection

from authapi.plain_text import strip_controls

# What sessions.ip and audit_events.ip hold; the longest IPv6 address is 45 characters.
MAX_ADDRESS_LENGTH = 64
MAX_USER_AGENT_LENGTH = 512  # sessions.user_agent, audit_events.user_agent

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in trusted)


def _parse(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address without its zone id, or None if `address` is not an IP address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None:
        return ipaddress.IPv6Address(int(ip))
    return ip


@lru_cache(maxsize=1024)  # called for every request, with the few peers of a deployment
def canonical_address(address: str) -> str:
    """The canonical text of an IP address; anything else, bounded and printable."""
    ip = _parse(address)
    if ip is None:
        return strip_controls(address)[:MAX_ADDRESS_LENGTH]
    return str(ip)


def _is_trusted(address: str, networks: Iterable[IPNetwork]) -> bool:
    ip = _parse(address)
    return ip is not None and any(ip in network for network in networks)


@dataclass(frozen=True)
class Requester:
    """Where a request came from, as sessions and the audit trail record it."""

    ip: str
    user_agent: str | None


def identify_requester(request: HTTPConnection, trusted_proxies: list[str]) -> Requester:
    # Stored and shown as the client sent it, minus what the database cannot hold.
    user_agent = strip_controls(request.headers.get("user-agent", ""))[:MAX_USER_AGENT_LENGTH]
    return Requester(ip=client_address(request, trusted_proxies), user_agent=user_agent or None)


def client_address(request: HTTPConnection, trusted_proxies: list[str]) -> str:
    peer = canonical_address(request.client.host) if request.client else "unknown"
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
            ip = _parse(hop)
            # Garbage where an address should be: trust nothing of it.
            return peer if ip is None else str(ip)
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
