"""Issuers and the host names a request may carry for them."""

from __future__ import annotations

from urllib.parse import urlsplit

# Listening on every interface names no address a client would use: the issuer then
# is the one a client on the same machine reaches (and the Host warning of hosts.py
# tells when clients come by another name; AUTHAPI_ISSUER is the fix).
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})  # noqa: S104 - names, not a bind
DEFAULT_PORTS = {"http": 80, "https": 443}


def _url_host(host: str) -> str:
    host = host.strip("[]").lower()
    return f"[{host}]" if ":" in host else host


def issuer_for_listen_address(host: str, port: int) -> str:
    """The issuer of a server that listens on `host`:`port` over plain HTTP."""
    name = "localhost" if host in WILDCARD_HOSTS else _url_host(host)
    return f"http://{name}:{port}"


def host_headers_for(issuer: str) -> frozenset[str]:
    """The `Host` values (lower case) of requests for `issuer`: with its port, and
    without it when that is the scheme's default."""
    parts = urlsplit(issuer)
    name = _url_host(parts.hostname or "")
    default = DEFAULT_PORTS.get(parts.scheme)
    port = parts.port or default
    hosts = {f"{name}:{port}"}
    if port == default:
        hosts.add(name)
    return frozenset(hosts)
