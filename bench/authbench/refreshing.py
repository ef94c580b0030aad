"""`POST /refresh` over a lean keep-alive connection: the request both refresh
scenarios send, and the loop each of their clients runs."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import uvloop

from authbench.httpload import Connection, HttpError, LoadResult, Step, closed_loop

JSON = {"Content-Type": "application/json"}


def address(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    return parts.hostname or "127.0.0.1", parts.port or 80


async def refresh(connection: Connection, token: str) -> str:
    """Rotate `token`; returns the new refresh token."""
    body = json.dumps({"refresh_token": token}).encode()
    status, answer = await connection.request("POST", "/refresh", body, JSON)
    if status != 200:
        raise HttpError(f"POST /refresh: {status} {answer[:300]!r}")
    new: str = json.loads(answer)["refresh_token"]
    return new


class SessionClient:
    """A client with its own session: refreshes in a loop, always with the newest token."""

    def __init__(self, base_url: str, token: str) -> None:
        self.connection = Connection(*address(base_url))
        self.token = token

    async def step(self) -> None:
        self.token = await refresh(self.connection, self.token)


def run_clients(
    base_url: str, tokens: list[str], warmup: float, seconds: float
) -> tuple[LoadResult, list[str]]:
    """One closed-loop run of a client per token; returns the figures and each
    session's newest token (for the next run)."""
    clients = [SessionClient(base_url, token) for token in tokens]

    async def run() -> LoadResult:
        try:
            steps: list[Step] = [client.step for client in clients]
            return await closed_loop(steps, warmup, seconds)
        finally:
            for client in clients:
                await client.connection.close()

    return uvloop.run(run()), [client.token for client in clients]
