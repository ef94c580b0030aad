"""One warning when requests arrive for another host than the issuer's.

Tokens and the metadata name the issuer's URL. A client that reached the service by
another name (another port, 127.0.0.1 for localhost, a proxy's public name) gets
tokens that its verifier refuses (`iss`), and a metadata document that points
elsewhere; nothing fails on the server, so it says so in its log, once per process.
After that warning, and for every request whose host is right, the cost is a look at
one header.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Receive, Scope, Send

from authapi.issuer.addresses import host_headers_for

logger = logging.getLogger(__name__)

# Probes and scrapers call by an address of their own (a pod's IP): not a client.
UNCHECKED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# What the warning quotes of a Host header: it is the client's text.
QUOTED_HOST_LENGTH = 100


class ForeignHostWarning:
    def __init__(self, app: ASGIApp, issuer: str) -> None:
        self.app = app
        self.issuer = issuer
        self.hosts = host_headers_for(issuer)
        self.warned = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.warned and scope["type"] == "http" and scope["path"] not in UNCHECKED_PATHS:
            self._check(scope)
        await self.app(scope, receive, send)

    def _check(self, scope: Scope) -> None:
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1").lower()
                if host not in self.hosts:
                    self.warned = True
                    logger.warning(
                        "requests arrive for host %r, but the issuer is %s: clients that "
                        "use this host get tokens and metadata naming the issuer's URL; "
                        "set AUTHAPI_ISSUER to the URL clients use (shown once)",
                        host[:QUOTED_HOST_LENGTH],
                        self.issuer,
                    )
                return
