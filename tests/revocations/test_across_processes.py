"""The guarantee with real `authapi serve` processes: a session revoked through one
instance is refused by the other within a second, on PostgreSQL (LISTEN/NOTIFY, the
poll only as a safety net) and on a SQLite file shared by several processes (poll)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from authapi.revocations.feed import LISTENER_APPLICATION_NAME
from tests.support.factories import bearer, registered_login
from tests.support.servers import Server, instances

POLL_INTERVAL = 3.0  # on PostgreSQL: far above the 1 s that notifications must meet


@pytest.fixture
def pair(
    backend: str, database_urls: dict[str, str], data_dir: Path, tmp_path: Path
) -> Iterator[tuple[Server, Server]]:
    """Two instances on one database: PostgreSQL, or one SQLite file."""
    env = {"AUTHAPI_RATE_LIMIT_ENABLED": "false"}
    if backend == "postgresql":
        database_url = database_urls["postgresql"]
        env["AUTHAPI_REVOCATION_POLL_INTERVAL"] = str(POLL_INTERVAL)
    else:
        database_url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    with instances(database_url, data_dir, tmp_path, env=env) as (a, b):
        yield a, b


@pytest.fixture
async def clients(pair: tuple[Server, Server]) -> AsyncIterator[tuple[httpx.AsyncClient, ...]]:
    async with (
        httpx.AsyncClient(base_url=pair[0].base_url, timeout=10.0) as a,
        httpx.AsyncClient(base_url=pair[1].base_url, timeout=10.0) as b,
    ):
        yield a, b


async def seconds_until_refused(
    http: httpx.AsyncClient, tokens: dict[str, Any], within: float
) -> float:
    """How long `http`'s instance goes on accepting the access token; fails past `within`."""
    started = time.monotonic()
    while (await http.get("/whoami", headers=bearer(tokens))).status_code == 200:
        if time.monotonic() - started > within:
            pytest.fail(f"access token still accepted after {within} s")
    return time.monotonic() - started


async def revoke_through(http: httpx.AsyncClient, tokens: dict[str, Any], how: int) -> None:
    """One of the revocations, chosen by `how`."""
    if how % 3 == 0:
        response = await http.post("/logout", json={"refresh_token": tokens["refresh_token"]})
    elif how % 3 == 1:
        response = await http.post("/revoke", data={"token": tokens["refresh_token"]})
    else:
        sid = (await http.get("/whoami", headers=bearer(tokens))).json()["sid"]
        response = await http.delete(f"/sessions/{sid}", headers=bearer(tokens))
    assert response.status_code in (200, 204), response.text


async def test_a_revocation_through_one_instance_reaches_the_other_within_a_second(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    delays = []
    for round_ in range(10):
        # Alternate the direction: log in through one, revoke through the other.
        here, there = clients if round_ % 2 == 0 else clients[::-1]
        _, tokens = await registered_login(here)
        assert (await here.get("/whoami", headers=bearer(tokens))).status_code == 200
        await revoke_through(there, tokens, round_)
        delays.append(await seconds_until_refused(here, tokens, within=1.0))
    assert max(delays) < 1.0


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_a_lost_listener_is_covered_by_the_poll_and_reconnects(
    pair: tuple[Server, Server],
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    database_urls: dict[str, str],
) -> None:
    a, b = clients
    listener = f"{LISTENER_APPLICATION_NAME}/{pair[0].process.pid}"
    engine = create_async_engine(database_urls["postgresql"])
    try:

        async def listener_pids() -> set[int]:
            async with engine.connect() as connection:
                rows = await connection.scalars(
                    text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
                    {"name": listener},
                )
                return set(rows)

        async def terminate(pid: int) -> None:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

        (lost,) = await listener_pids()
        _, tokens = await registered_login(a)
        await terminate(lost)
        await revoke_through(b, tokens, 0)
        # Whether the notification was lost or not, the poll (or the listener's read
        # after reconnecting) brings it within the poll interval.
        await seconds_until_refused(a, tokens, within=POLL_INTERVAL + 1.0)

        # The listener is back by itself, and notifications work again.
        started = time.monotonic()
        while (await listener_pids()) - {lost} == set():
            if time.monotonic() - started > 10:
                pytest.fail(f"the listener did not reconnect:\n{pair[0].log()}")
            await asyncio.sleep(0.05)
        _, tokens = await registered_login(a)
        await revoke_through(b, tokens, 1)
        assert await seconds_until_refused(a, tokens, within=1.0) < 1.0
    finally:
        await engine.dispose()
