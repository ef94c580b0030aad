"""Test harness: every test that takes `client` runs on PostgreSQL and on SQLite.

Schemas come from the migrations (once per run, on freshly created databases); each
test starts from empty tables. PostgreSQL must be reachable: an unreachable server
fails the run, it never skips it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import delete
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from authapi import migrate
from authapi.app import create_app
from authapi.audit.models import AuditEvent
from authapi.clock import Clock
from authapi.config import Settings
from authapi.context import AppContext
from authapi.sessions.models import LoginSession
from authapi.signing.models import StoredSigningKey
from authapi.users.models import User

# The server to test against; each test run makes its own database there (named after
# the process, so that runs side by side do not collide) and drops it at the end.
POSTGRES_SERVER_URL = os.environ.get(
    "AUTHAPI_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
POSTGRES_URL = (
    make_url(POSTGRES_SERVER_URL)
    .set(database=f"authapi_test_{os.getpid()}")
    .render_as_string(hide_password=False)
)
BACKENDS = ["sqlite", "postgresql"]


async def recreate_postgres_database(url: str, *, create: bool = True) -> None:
    """Drop (and create again) the database named in `url`, connecting to the server's
    `postgres` database to do it."""
    parsed = make_url(url)
    admin = make_url(POSTGRES_SERVER_URL).set(drivername="postgresql")
    try:
        connection = await asyncpg.connect(admin.render_as_string(hide_password=False), timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        raise RuntimeError(
            f"PostgreSQL is unreachable at {parsed.host}:{parsed.port} ({exc}); "
            "the tests need it (set AUTHAPI_TEST_POSTGRES_URL to point elsewhere)"
        ) from exc
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
        if create:
            await connection.execute(f'CREATE DATABASE "{parsed.database}"')
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def database_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    sqlite_file = tmp_path_factory.mktemp("sqlite") / "authapi.db"
    urls = {"sqlite": f"sqlite+aiosqlite:///{sqlite_file}", "postgresql": POSTGRES_URL}
    asyncio.run(recreate_postgres_database(POSTGRES_URL))
    try:
        for url in urls.values():
            migrate.upgrade(url)
        yield urls
    finally:
        asyncio.run(recreate_postgres_database(POSTGRES_URL, create=False))


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared by all tests, so the development keys are generated once."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, database_urls: dict[str, str]) -> str:
    return database_urls[backend]


def make_settings(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        data_dir=data_dir,
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """Override in a test module or class to change the app's settings."""
    return {}


@pytest.fixture
def settings(database_url: str, data_dir: Path, settings_overrides: dict[str, object]) -> Settings:
    return make_settings(database_url, data_dir, **settings_overrides)


class FakeClock(Clock):
    """The app's clock, moved by tests instead of sleeping."""

    def __init__(self) -> None:
        self._offset = timedelta()

    def now(self) -> datetime:
        return super().now() + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def clear_signing_keys(database_url: str) -> None:
    """Empty the key table, so that the next app seeds it from its own settings."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await connection.execute(delete(StoredSigningKey))
    finally:
        await engine.dispose()


@pytest.fixture
async def app(settings: Settings, clock: FakeClock, database_url: str) -> AsyncIterator[FastAPI]:
    # Keys a test added or rotated must not reach the next one. (On the database itself:
    # the app may reach it through a pooler, tests/test_pooler.py.)
    await clear_signing_keys(database_url)
    app = create_app(settings, clock=clock)
    async with LifespanManager(app):
        context: AppContext = app.state.context
        async with context.engine.begin() as connection:
            for table in (AuditEvent, LoginSession, User):
                await connection.execute(delete(table))
        yield app


@pytest.fixture
def context(app: FastAPI) -> AppContext:
    result: AppContext = app.state.context
    return result


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
