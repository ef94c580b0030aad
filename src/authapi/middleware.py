"""Pure ASGI middleware (no per-request task, unlike BaseHTTPMiddleware): the request
id, access log and latency of every request, response headers every answer carries,
and size limits checked before any parsing."""

from __future__ import annotations

import logging
import time

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authapi import logs, metrics
from authapi.client_address import client_address, forwarded_https
from authapi.error_bodies import NO_STORE, error_response

access_logger = logging.getLogger(logs.ACCESS_LOGGER)

MAX_BODY_BYTES = 64 * 1024  # the largest legitimate body is a few hundred bytes
MAX_HEADER_BYTES = 16 * 1024  # a 4 KiB token plus a browser's usual headers fits easily


class SecurityHeaders:
    """nosniff, no-referrer and no framing everywhere, HSTS when configured, and
    `no-store` on every response that does not choose its own caching: tokens and user
    data must never sit in a cache.

    HSTS only on answers that went out over HTTPS: the connection's own scheme, or
    `X-Forwarded-Proto: https` from a trusted proxy (AUTHAPI_TRUSTED_PROXIES). Browsers
    ignore it over plain http anyway, and there it would only claim what is not so.
    A response with a Content-Security-Policy of its own (/docs) keeps it; every other
    one gets `frame-ancestors 'none'`, the CSP twin of X-Frame-Options."""

    def __init__(
        self, app: ASGIApp, *, hsts_max_age: int = 0, trusted_proxies: list[str] | None = None
    ) -> None:
        self.app = app
        self.trusted_proxies = trusted_proxies or []
        self.headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
        ]
        self.hsts = (
            (b"strict-transport-security", f"max-age={hsts_max_age}; includeSubDomains".encode())
            if hsts_max_age
            else None
        )

    def _over_https(self, scope: Scope) -> bool:
        if scope.get("scheme") == "https":
            return True
        return forwarded_https(HTTPConnection(scope), self.trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = list(self.headers)
        if self.hsts is not None and self._over_https(scope):
            extra.append(self.hsts)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                if b"cache-control" not in names:
                    headers.append((b"cache-control", NO_STORE["Cache-Control"].encode()))
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", b"frame-ancestors 'none'"))
                message["headers"] = headers + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


class JSONErrorCORS(CORSMiddleware):
    """Starlette's CORS, except that a refused preflight gets the JSON error body that
    every other error has, instead of a text/plain "Disallowed CORS origin"."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        # Starlette names what it refused ("Disallowed CORS origin, method").
        refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")
        headers = {
            name: value
            for name, value in response.headers.items()
            if name.lower() not in ("content-length", "content-type")
        }
        return error_response(
            response.status_code,
            "invalid_request",
            f"Cross-origin request refused: {refused} not allowed (AUTHAPI_CORS_ORIGINS).",
            headers,
        )


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    # The body was not read: closing the connection keeps what the client may still
    # send from being read as its next request.
    response = error_response(status, "request_too_large", message, {"Connection": "close"})
    await response(scope, receive, send)


class SizeLimits:
    """Refuse oversized headers (431) and bodies (413) before anything parses them.

    A declared Content-Length over the limit is refused at once; a body without one
    (chunked) is counted as it arrives and cut off at the limit.
    """

    def __init__(
        self, app: ASGIApp, *, max_body: int = MAX_BODY_BYTES, max_headers: int = MAX_HEADER_BYTES
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.max_headers = max_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        if sum(len(name) + len(value) for name, value in headers) > self.max_headers:
            await _refuse(scope, receive, send, 431, "The request headers are too large.")
            return
        for name, value in headers:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.max_body:
                    await _refuse(scope, receive, send, 413, "The request body is too large.")
                    return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    # An HTTPException, so the app's handlers answer it (413) wherever the
                    # body is being read.
                    raise HTTPException(413, "The request body is too large.")
            return message

        await self.app(scope, limited_receive, send)


def route_template(scope: Scope) -> str:
    """The path pattern of the route that answered (`/sessions/{session_id}`), never
    the raw path, whose values are unbounded; `unmatched` when no route did."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    if "endpoint" in scope and scope.get("root_path"):  # a mounted app (/demo)
        return f"{scope['root_path']}/{{path}}"
    return "unmatched"


class RequestContext:
    """The outermost layer: every request gets an id (a sane incoming `X-Request-ID`,
    else a new one) that every log line of it carries and its answer echoes, then one
    access-log line and its latency in the metrics. Outermost, so that the refusals of
    SizeLimits (413, 431) get all of it too.

    An unhandled error (a 500, answered by Starlette's outermost handler, outside
    every middleware) leaves the id set for that handler's log line; its answer has no
    `X-Request-ID`."""

    def __init__(
        self, app: ASGIApp, *, trusted_proxies: list[str], access_log: bool = True
    ) -> None:
        self.app = app
        self.trusted_proxies = trusted_proxies
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        connection = HTTPConnection(scope)
        request_id = logs.accept_request_id(connection.headers.get(logs.REQUEST_ID_HEADER))
        token = logs.request_id.set(request_id)
        header = (logs.REQUEST_ID_HEADER.lower().encode(), request_id.encode())
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = route_template(scope)
            metrics.observe_request(scope["method"], route, status, seconds)
            if self.access_log and access_logger.isEnabledFor(logging.INFO):
                self._log(connection, route, status, seconds)
        logs.request_id.reset(token)

    def _log(self, connection: HTTPConnection, route: str, status: int, seconds: float) -> None:
        method = connection.scope["method"]
        # Never the query string; percent-decoded, so escape what could break a line.
        path = connection.scope["path"][:512]
        if not path.isprintable():
            path = path.encode("unicode_escape").decode("ascii")
        # Made and handled here rather than by `access_logger.info`, which would look
        # up the calling frame for every line (a sixth of a line's cost, and the answer is
        # always this method); the logger's handlers and filters see it all the same.
        record = access_logger.makeRecord(
            access_logger.name,
            logging.INFO,
            __file__,
            0,
            "%s %s %d",
            (method, path, status),
            None,
            "RequestContext._log",
            {
                "method": method,
                "route": route,
                "path": path,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "client_ip": client_address(connection, self.trusted_proxies),
            },
        )
        access_logger.handle(record)
