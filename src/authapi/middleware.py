"""Pure ASGI middleware (no per-request task, unlike BaseHTTPMiddleware): response
headers every answer carries, and size limits checked before any parsing."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authapi.errors import NO_STORE

MAX_BODY_BYTES = 64 * 1024  # the largest legitimate body is a few hundred bytes
MAX_HEADER_BYTES = 16 * 1024  # a 4 KiB token plus a browser's usual headers fits easily


class SecurityHeaders:
    """nosniff and no-referrer everywhere, HSTS when configured, and `no-store` on every
    response that does not choose its own caching: tokens and user data must never sit
    in a cache."""

    def __init__(self, app: ASGIApp, *, hsts_max_age: int = 0) -> None:
        self.app = app
        self.headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
        ]
        if hsts_max_age:
            self.headers.append(
                (
                    b"strict-transport-security",
                    f"max-age={hsts_max_age}; includeSubDomains".encode(),
                )
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    headers.append((b"cache-control", NO_STORE["Cache-Control"].encode()))
                message["headers"] = headers + self.headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _refuse(send: Send, status: int, error: str, description: str) -> None:
    body = json.dumps({"error": error, "error_description": description}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


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
            await _refuse(send, 431, "request_too_large", "The request headers are too large.")
            return
        for name, value in headers:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.max_body:
                    await _refuse(send, 413, "request_too_large", "The request body is too large.")
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
