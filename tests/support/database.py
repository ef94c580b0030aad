"""The test databases: PostgreSQL's (made and dropped per run) and, for service-level
tests, a session whose every write is rolled back at the end of the test.

`rolled_back_session` follows SQLAlchemy's "Joining a Session into an External
Transaction" (the pattern of Polar's `server/tests/fixtures/database.py`): one
connection, an outer transaction begun on it, and the session bound to that
connection with `join_transaction_mode="create_savepoint"`. Whatever the code under
test does with the session (flush, `begin_nested()`, `commit()`, `rollback()`) then
happens inside a savepoint of the outer transaction, which is rolled back at the end:
no row outlives the test, and the tables need no emptying between service tests.

On SQLite this needs SAVEPOINT to work under aiosqlite, which it does not with the
driver's own transaction handling (SQLAlchemy's pysqlite/aiosqlite documentation,
"Serializable isolation / Savepoints / Transactional DDL"): the driver must leave
transactions alone and SQLAlchemy emit BEGIN itself. The app's engine
(`authapi.db.create_engine`) does exactly that, to begin every transaction with BEGIN
IMMEDIATE, so the session here is made on the app's own engine; the isolation tests
(test_database.py, beside this file) fail if it ever stops doing so.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy import delete
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from authapi.db import create_sessionmaker
from authapi.signing.models import StoredSigningKey

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


async def clear_signing_keys(database_url: str) -> None:
    """Empty the key table, so that the next app seeds it from its own settings."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await connection.execute(delete(StoredSigningKey))
    finally:
        await engine.dispose()


@asynccontextmanager
async def rolled_back_session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session like the app's (same options), inside an outer transaction that is
    rolled back on the way out, whatever the session committed meanwhile."""
    async with engine.connect() as connection:
        outer = await connection.begin()
        session = create_sessionmaker(engine)(
            bind=connection, join_transaction_mode="create_savepoint"
        )
        try:
            yield session
        finally:
            await session.close()
            await outer.rollback()
