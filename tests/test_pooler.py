"""authapi behind a connection pooler in transaction mode: a real PgBouncer (Debian's
package, started on a free port by authbench/pgbouncer.py, which the pooler benchmark
uses too) in front of the test database, two server connections shared by every client connection.

Through it, with `AUTHAPI_DATABASE_POOLER=transaction`: the whole token flow, concurrent
refreshes, and instant revocation across two instances (their revocation listeners on
`AUTHAPI_LISTEN_DATABASE_URL`, PostgreSQL itself: LISTEN needs a session of its own).
Without the setting, a statement prepared on one server connection is looked for on another.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from authbench import pgbouncer as pgbouncers
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from authapi.app import create_app
from authapi.config import Settings
from authapi.context import AppContext
from authapi.db import create_engine
from tests.support.clock import FakeClock
from tests.support.database import POSTGRES_SERVER_URL
from tests.support.factories import (
    PASSWORD,
    bearer,
    log_out,
    login,
    refresh,
    register,
    registered_login,
)
from tests.support.servers import serving
from tests.support.settings import CHEAP_HASHES, make_settings
from tests.support.waiting import wait_until

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])
# Fewer server connections than the app's pool has: client connections must share them.
SERVER_CONNECTIONS = 2


@pytest.fixture(scope="module")
def pgbouncer() -> Iterator[int]:
    """A PgBouncer in transaction mode (authbench/pgbouncer.py); yields its port."""
    if not pgbouncers.installed():
        pytest.fail(str(pgbouncers.PgBouncerMissing()))
    with pgbouncers.running(POSTGRES_SERVER_URL, SERVER_CONNECTIONS) as bouncer:
        yield bouncer.port


def _through(database_url: str, port: int) -> str:
    return make_url(database_url).set(port=port).render_as_string(hide_password=False)


def pooled_settings(database_url: str, data_dir: Path, port: int, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_pooler": "transaction",
        "listen_database_url": database_url,
        "rate_limit_enabled": False,
        **CHEAP_HASHES,
    }
    return make_settings(_through(database_url, port), data_dir, **{**values, **overrides})


@pytest.fixture
def settings(database_url: str, data_dir: Path, pgbouncer: int) -> Settings:
    return pooled_settings(database_url, data_dir, pgbouncer)


@pytest.fixture
async def second_instance(
    database_url: str, data_dir: Path, pgbouncer: int, clock: FakeClock, app: FastAPI
) -> AsyncIterator[tuple[httpx.AsyncClient, AppContext]]:
    """Another instance through the pooler; its poll out of the way, so that what it
    learns comes from its listener."""
    settings = pooled_settings(database_url, data_dir, pgbouncer, revocation_poll_interval=60)
    other = create_app(settings, clock=clock)
    async with LifespanManager(other):
        context: AppContext = other.state.context
        await wait_until(lambda: context.revocation_feed.listening)
        transport = httpx.ASGITransport(app=other)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http, context


async def _many_at_once(client: httpx.AsyncClient, count: int = 12) -> list[dict[str, Any]]:
    """Registrations and logins at once: more client connections than server ones."""
    users = await asyncio.gather(*(register(client) for _ in range(count)))
    return list(await asyncio.gather(*(login(client, user["email"]) for user in users)))


class TestThroughTransactionPooler:
    async def test_the_token_flow(self, client: httpx.AsyncClient) -> None:
        user, tokens = await registered_login(client)
        me = await client.get("/users/me", headers=bearer(tokens))
        assert me.status_code == 200
        assert me.json()["email"] == user["email"]
        for _ in range(3):
            response = await refresh(client, tokens["refresh_token"])
            assert response.status_code == 200, response.text
            tokens = response.json()
        sessions = await client.get("/sessions", headers=bearer(tokens))
        assert [session["current"] for session in sessions.json()] == [True]
        await log_out(client, tokens)
        assert (await refresh(client, tokens["refresh_token"])).status_code == 400

    async def test_many_clients_at_once(self, client: httpx.AsyncClient) -> None:
        sessions = await _many_at_once(client)
        refreshed = await asyncio.gather(
            *(refresh(client, tokens["refresh_token"]) for tokens in sessions)
        )
        assert [response.status_code for response in refreshed] == [200] * len(sessions)

    async def test_concurrent_refreshes_of_one_token_advance_it_once(
        self, client: httpx.AsyncClient
    ) -> None:
        _, tokens = await registered_login(client)
        answers = await asyncio.gather(
            *(refresh(client, tokens["refresh_token"]) for _ in range(8))
        )
        assert [answer.status_code for answer in answers] == [200] * 8
        assert len({answer.json()["refresh_token"] for answer in answers}) == 1

    async def test_another_instance_learns_a_revocation_within_a_second(
        self,
        client: httpx.AsyncClient,
        second_instance: tuple[httpx.AsyncClient, AppContext],
    ) -> None:
        other_client, other = second_instance
        _, tokens = await registered_login(client)
        whoami = await other_client.get("/whoami", headers=bearer(tokens))
        assert whoami.status_code == 200
        await log_out(client, tokens)
        sid = whoami.json()["sid"]
        assert await wait_until(lambda: sid in other.revoked_sessions, within=1.0) < 1
        assert (await other_client.get("/whoami", headers=bearer(tokens))).status_code == 401


class TestServeThroughTransactionPooler:
    def test_serve_with_workers(
        self, database_url: str, data_dir: Path, pgbouncer: int, tmp_path: Path
    ) -> None:
        # `serve` itself (the schema check, the key table) and two workers, each with its
        # own pool, all on the two server connections.
        env = {
            "AUTHAPI_DATABASE_POOLER": "transaction",
            "AUTHAPI_LISTEN_DATABASE_URL": database_url,
            "AUTHAPI_RATE_LIMIT_ENABLED": "false",
        }
        with (
            serving(
                _through(database_url, pgbouncer), data_dir, tmp_path, env=env, workers=2
            ) as server,
            httpx.Client(base_url=server.base_url, timeout=10.0) as http,
        ):
            assert http.get("/readyz").status_code == 200
            email = f"pooled-{uuid.uuid4().hex}@example.com"
            body = {"email": email, "password": PASSWORD}
            assert http.post("/users", json=body).status_code == 201
            form = {"grant_type": "password", "username": email, "password": PASSWORD}
            tokens = http.post("/token", data=form).json()
            for _ in range(5):  # spread over both workers' pools
                response = http.post("/refresh", json={"refresh_token": tokens["refresh_token"]})
                assert response.status_code == 200, server.log()
                tokens = response.json()
            assert http.get("/users/me", headers=bearer(tokens)).status_code == 200
            assert "prepared statement" not in server.log()


class TestPreparedStatements:
    """What the setting is for. PgBouncer hands a client the server connection released
    last; so with one client holding it, another client's next transaction runs on the
    other server connection, where the statements it prepared before do not exist."""

    @pytest.mark.parametrize(("pooler", "works"), [("transaction", True), ("none", False)])
    async def test_a_statement_on_another_server_connection(
        self, database_url: str, data_dir: Path, pgbouncer: int, pooler: str, works: bool
    ) -> None:
        engine = create_engine(
            pooled_settings(database_url, data_dir, pgbouncer, database_pooler=pooler)
        )
        query = text("SELECT count(*) FROM users")
        try:
            async with engine.connect() as first:
                await first.execute(query)  # prepared (and, by default, kept) on one
                await first.commit()
                async with engine.connect() as second:
                    await second.execute(text("SELECT 1"))  # takes that one, and holds it
                    if works:
                        await first.execute(query)
                    else:
                        with pytest.raises(DBAPIError, match="prepared statement"):
                            await first.execute(query)
        finally:
            await engine.dispose()
