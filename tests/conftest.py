"""Test harness: every test that takes `client` or `db_session` runs on PostgreSQL and
on SQLite.

Schemas come from the migrations (once per run, on freshly created databases). A test
of the whole app (`client`, `app`, `context`) starts from empty tables; a service-level
test (`db_session`) gets a session whose writes are all rolled back at its end. The
helpers themselves are in tests/support/. PostgreSQL must be reachable: an unreachable
server fails the run, it never skips it.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from authapi import migrate
from authapi.app import create_app
from authapi.audit.models import AuditEvent
from authapi.config import Settings
from authapi.context import AppContext
from authapi.db import create_engine
from authapi.mail.models import MailToken, OutboxMail
from authapi.passkeys.models import PasskeyChallenge
from authapi.sessions.models import DeletedSession, LoginSession
from authapi.users.models import User
from tests.support.clock import FakeClock
from tests.support.database import (
    POSTGRES_URL,
    clear_signing_keys,
    recreate_postgres_database,
    rolled_back_session,
)
from tests.support.settings import make_settings

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(autouse=True)
def collect_garbage_after_each_test() -> Iterator[None]:
    """A connection a test leaves unclosed warns when it is collected, which is a
    failure (filterwarnings = error): collected here, it fails the test that leaked it,
    not whichever test the collector happened to run in."""
    yield
    gc.collect()
    # What survived is frozen out of later collections, so each collects only what its
    # own test made: a full scan of everything the suite has loaded cost ~0.35 s a test.
    gc.freeze()


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


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """Override in a test module or class to change the app's settings."""
    return {}


@pytest.fixture
def settings(database_url: str, data_dir: Path, settings_overrides: dict[str, object]) -> Settings:
    return make_settings(database_url, data_dir, **settings_overrides)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def app(settings: Settings, clock: FakeClock, database_url: str) -> AsyncIterator[FastAPI]:
    # Keys a test added or rotated must not reach the next one. (On the database itself:
    # the app may reach it through a pooler, tests/test_pooler.py.)
    await clear_signing_keys(database_url)
    app = create_app(settings, clock=clock)
    async with LifespanManager(app):
        context: AppContext = app.state.context
        async with context.engine.begin() as connection:
            tables = (AuditEvent, LoginSession, DeletedSession, OutboxMail, MailToken)
            # A passwordless login's challenge names no user: the users' cascade misses it.
            for table in (*tables, PasskeyChallenge, User):
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


@pytest.fixture
async def db_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The app's engine for the test's database, without the app around it."""
    engine = create_engine(settings)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def db_session(db_engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """For service-level tests: a session on the test's database whose writes, commits
    included, are rolled back when the test ends (tests/support/database.py)."""
    async with rolled_back_session(db_engine) as session:
        yield session
