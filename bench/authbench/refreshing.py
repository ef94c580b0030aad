"""Refreshing over a lean connection: authapi's `POST /refresh` and simplejwt's
`POST /api/token/refresh/` (the `peer_simplejwt` scenario), and the loop each client
of the refresh scenarios runs, one session per client, always with the newest token."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from dataclasses import dataclass
from urllib.parse import urlsplit

import uvloop

from authbench.httpload import Connection, HttpError, LoadResult, Step, closed_loop, paced_loop

JSON = {"Content-Type": "application/json"}


def address(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    return parts.hostname or "127.0.0.1", parts.port or 80


@dataclass(frozen=True)
class RefreshEndpoint:
    """Where a server rotates a refresh token, and the JSON field that carries it
    (in the request and in the answer alike)."""

    path: str
    field: str

    async def attempt(self, connection: Connection, token: str) -> tuple[int, str | None]:
        """The answer's status and, on 200, the new refresh token."""
        status, answer = await self._post(connection, token)
        return status, (self._token(answer) if status == 200 else None)

    async def rotate(self, connection: Connection, token: str) -> str:
        """Rotate `token`; returns the new refresh token, raises on any other answer."""
        status, answer = await self._post(connection, token)
        if status != 200:
            raise HttpError(f"POST {self.path}: {status} {answer[:300]!r}")
        return self._token(answer)

    async def _post(self, connection: Connection, token: str) -> tuple[int, bytes]:
        body = json.dumps({self.field: token}).encode()
        return await connection.request("POST", self.path, body, JSON)

    def _token(self, answer: bytes) -> str:
        new: str = json.loads(answer)[self.field]
        return new


AUTHAPI = RefreshEndpoint("/refresh", "refresh_token")
SIMPLEJWT = RefreshEndpoint("/api/token/refresh/", "refresh")


def refresh(connection: Connection, token: str) -> Awaitable[str]:
    """authapi's `POST /refresh` of `token`; the new refresh token."""
    return AUTHAPI.rotate(connection, token)


class SessionClient:
    """A client with its own session: refreshes in a loop, always with the newest token."""

    def __init__(self, base_url: str, token: str, endpoint: RefreshEndpoint) -> None:
        self.connection = Connection(*address(base_url))
        self.token = token
        self.endpoint = endpoint

    async def step(self) -> None:
        self.token = await self.endpoint.rotate(self.connection, self.token)


def run_clients(
    base_url: str,
    tokens: list[str],
    warmup: float,
    seconds: float,
    endpoint: RefreshEndpoint = AUTHAPI,
    rate: float | None = None,
) -> tuple[LoadResult, list[str]]:
    """One run of a client per token, in a closed loop or, given a `rate` (refreshes/s),
    paced; returns the figures and each session's newest token (for the next run)."""
    clients = [SessionClient(base_url, token, endpoint) for token in tokens]

    async def run() -> LoadResult:
        try:
            steps: list[Step] = [client.step for client in clients]
            if rate is None:
                return await closed_loop(steps, warmup, seconds)
            return await paced_loop(steps, rate, warmup, seconds)
        finally:
            for client in clients:
                await client.connection.close()

    return uvloop.run(run()), [client.token for client in clients]
