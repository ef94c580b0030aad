"""The login flood's client: logins all at once, each on a connection of its own, from
one event loop, half with the right password and half with a wrong one; when each was
sent and answered, and what the answer said.

Plain HTTP/1.1 (`httpload`) on uvloop, because the client must keep up with the server:
one httpx.AsyncClient with a pool of 500 connections spent 5.7 s of CPU on 500 logins
where the server spent 2.2 s, so it, not the server, set the pace (bench/README.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from urllib.parse import urlencode

from authbench import accounts
from authbench.httpload import Connection, HttpError

WRONG_PASSWORD = "wrong horse battery staple"  # noqa: S105 - a throwaway benchmark user
FORM = {"Content-Type": "application/x-www-form-urlencoded", "Connection": "close"}
FAILED = (OSError, TimeoutError, ValueError, HttpError, asyncio.IncompleteReadError)


@dataclass(frozen=True)
class Login:
    status: int  # 0: no answer (`error` says why)
    latency: float
    end: float  # monotonic s at which the answer was in
    sent: float  # ... at which the request went out
    retry_after: str | None = None
    description: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Flood:
    start: float
    end: float
    logins: list[Login]


def _description(body: bytes) -> str | None:
    with contextlib.suppress(ValueError, AttributeError):
        return str(json.loads(body).get("error_description"))
    return None


async def flood(host: str, port: int, email: str, count: int) -> Flood:
    """`count` password grants for `email` at once; even ones with the right password."""
    go = asyncio.Event()

    async def login(index: int) -> Login:
        password = accounts.PASSWORD if index % 2 == 0 else WRONG_PASSWORD
        form = {"grant_type": "password", "username": email, "password": password}
        body = urlencode(form).encode()
        connection = Connection(host, port)
        await go.wait()
        start = time.monotonic()
        try:
            async with asyncio.timeout(120):
                reply = await connection.exchange("POST", "/token", body, FORM)
        except FAILED as exc:
            end = time.monotonic()
            return Login(0, end - start, end, connection.sent_at or end, error=type(exc).__name__)
        finally:
            with contextlib.suppress(OSError):
                await connection.close()
        end = time.monotonic()
        description = _description(reply.body) if reply.status != 200 else None
        retry_after = reply.headers.get("retry-after")
        return Login(reply.status, end - start, end, connection.sent_at, retry_after, description)

    tasks = [asyncio.create_task(login(index)) for index in range(count)]
    await asyncio.sleep(0)  # one turn of the loop: every task now waits for `go`
    start = time.monotonic()
    go.set()
    logins = await asyncio.gather(*tasks)
    return Flood(start, time.monotonic(), list(logins))
