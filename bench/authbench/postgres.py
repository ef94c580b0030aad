"""The bench databases on the local PostgreSQL: create, drop, bulk rows, facts.

Every database the suite makes is called `authapi_bench*` and dropped (WITH FORCE)
before it is made again, so an interrupted run leaves nothing that breaks the next.
Bulk rows are written with `generate_series` in one statement; their ids are
`md5(<kind>-<n>)::uuid`, so a driver can name the n-th row without reading it back.
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg

from authbench.config import ADMIN_DSN

_NAME = re.compile(r"authapi_bench[a-z0-9_]*")
FILLER_USERS = 1_000  # the bulk sessions belong to this many bulk users


def dsn(database: str) -> str:
    return ADMIN_DSN.rsplit("/", 1)[0] + "/" + database


def sqlalchemy_url(database: str) -> str:
    return dsn(database).replace("postgresql://", "postgresql+asyncpg://", 1)


def _checked(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a bench database name: {name!r}")
    return name


async def _run(database: str, statement: str, *args: Any) -> Any:
    connection = await asyncpg.connect(dsn(database))
    try:
        return await connection.fetchval(statement, *args)
    finally:
        await connection.close()


def fetchval(database: str, statement: str, *args: Any) -> Any:
    return asyncio.run(_run(database, statement, *args))


def execute(database: str, *statements: str) -> None:
    """Statements in turn on one connection, outside a transaction (VACUUM may run)."""

    async def run() -> None:
        connection = await asyncpg.connect(dsn(database))
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


def fetchall(database: str, statement: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(dsn(database))
        try:
            return list(await connection.fetch(statement, *args))
        finally:
            await connection.close()

    return asyncio.run(run())


def create_database(name: str) -> str:
    """A fresh, empty database; returns its SQLAlchemy URL for AUTHAPI_DATABASE_URL."""
    drop_database(name)
    fetchval("postgres", f'CREATE DATABASE "{_checked(name)}"')
    return sqlalchemy_url(name)


def drop_database(name: str) -> None:
    fetchval("postgres", f'DROP DATABASE IF EXISTS "{_checked(name)}" WITH (FORCE)')


@contextmanager
def fresh_database(name: str) -> Iterator[str]:
    """`create_database`, dropped again on the way out (crashed or not)."""
    try:
        yield create_database(name)
    finally:
        drop_database(name)


def set_database_option(name: str, option: str, value: str | None) -> None:
    """ALTER DATABASE ... SET (or RESET): applies to connections opened afterwards."""
    if not re.fullmatch(r"[a-z_]+", option):
        raise ValueError(option)
    if value is None:
        fetchval("postgres", f'ALTER DATABASE "{_checked(name)}" RESET {option}')
    else:
        literal = value.replace("'", "''")
        fetchval("postgres", f"ALTER DATABASE \"{_checked(name)}\" SET {option} = '{literal}'")


def row_id(kind: str, number: int) -> uuid.UUID:
    """The id `fill_*` gave the n-th bulk row: md5('bench-<kind>-<n>')::uuid."""
    return uuid.UUID(hashlib.md5(f"bench-{kind}-{number}".encode()).hexdigest())  # noqa: S324


def fill_users(database: str) -> None:
    fetchval(
        database,
        """
        INSERT INTO users (id, email, password_hash, role, is_active, created_at)
        SELECT md5('bench-user-' || n)::uuid, 'bulk' || n || '@example.com',
               'not a password hash', 'user', true, now() - interval '60 days'
        FROM generate_series(1, $1::int) AS n
        ON CONFLICT DO NOTHING
        """,
        FILLER_USERS,
    )


def fill_sessions(database: str, first: int, last: int, *, expired: bool) -> None:
    """Sessions number `first`..`last` (inclusive) of the bulk users, every column set
    as authapi sets it: active ones expire 1 h to 14 days from now; expired ones ended
    1 to 30 days ago (older than any access token, so `authapi prune` takes them)."""
    expires = (
        "now() - interval '1 day' - interval '29 days' * random()"
        if expired
        else "now() + interval '1 hour' + interval '13 days' * random()"
    )
    fetchval(
        database,
        f"""
        INSERT INTO sessions (id, user_id, generation, scope, created_at, last_used_at,
                              rotated_at, expires_at, absolute_expires_at, revoked_at,
                              revoked_reason, user_agent, ip)
        SELECT md5('bench-session-' || n)::uuid,
               md5('bench-user-' || (n % {FILLER_USERS} + 1))::uuid,
               0, 'profile email',
               now() - interval '16 days', now() - interval '2 days', NULL,
               {expires}, now() + interval '14 days', NULL, NULL,
               'Mozilla/5.0 (X11; Linux x86_64) authapi-bench', '192.0.2.' || (n % 250)
        FROM generate_series($1::int, $2::int) AS n
        """,  # noqa: S608 - two fixed expressions, numbers as parameters
        first,
        last,
    )
    fetchval(database, "ANALYZE sessions")


@contextmanager
def indexes_built_after(database: str, table: str) -> Iterator[None]:
    """Drop `table`'s secondary indexes, let the caller fill it, then build them again
    and VACUUM ANALYZE: one sort per index beats updating each index row by row, and
    the vacuum leaves the table as autovacuum would keep it (visibility map, hint bits)."""
    definitions = fetchall(
        database,
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = $1::regclass "
        "AND NOT x.indisprimary AND NOT x.indisunique",
        table,
    )
    execute(database, *(f'DROP INDEX "{name}"' for name, _ in definitions))
    yield
    # One build at a time with room to sort in memory (the default 64 MB spills).
    execute(
        database,
        "SET maintenance_work_mem = '512MB'",
        *(definition for _, definition in definitions),
        f"VACUUM (ANALYZE) {table}",
    )


async def _columns(connection: asyncpg.Connection, table: str) -> list[str]:
    rows = await connection.fetch(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
        table,
    )
    return [row["column_name"] for row in rows]


async def _copy_rows(
    connection: asyncpg.Connection,
    table: str,
    new: tuple[str, str],
    second_type: str,
    template_id: uuid.UUID,
    ids: list[uuid.UUID],
    seconds: list[Any],
    spent: tuple[str, ...] = (),
) -> None:
    """Copies of `table`'s row keyed `template_id` (its first column of `new`), one per
    (id, second): the two `new` columns from the lists, `spent` columns left to their
    defaults, every other column as the template has it."""
    key, second = new
    kept = [c for c in await _columns(connection, table) if c not in (*new, *spent)]
    await connection.execute(
        f"""
        INSERT INTO {table} ({key}, {second}, {", ".join(kept)})
        SELECT fresh.a, fresh.b, {", ".join("t." + c for c in kept)}
        FROM unnest($1::uuid[], $2::{second_type}[]) AS fresh(a, b), {table} t
        WHERE t.{key} = $3
        """,  # noqa: S608 - names from the schema and this module, values as parameters
        ids,
        seconds,
        template_id,
    )


def clone_totp_users(
    database: str, template: str, users: list[tuple[uuid.UUID, str, bytes]]
) -> None:
    """Copies of the user `template` (an email) and of its TOTP factor, one per
    (id, email, sealed secret): every other column as authapi set it on the template
    (password hash, flags, times), no step spent. Columns are read from the schema, so
    that a new one is copied too."""

    async def clone() -> None:
        connection = await asyncpg.connect(dsn(database))
        try:
            async with connection.transaction():
                template_id = await connection.fetchval(
                    "SELECT id FROM users WHERE email = $1", template
                )
                ids = [user[0] for user in users]
                await _copy_rows(
                    connection,
                    "users",
                    ("id", "email"),
                    "text",
                    template_id,
                    ids,
                    [user[1] for user in users],
                )
                await _copy_rows(
                    connection,
                    "totp_factors",
                    ("user_id", "sealed_secret"),
                    "bytea",
                    template_id,
                    ids,
                    [user[2] for user in users],
                    spent=("last_used_step",),
                )
        finally:
            await connection.close()

    asyncio.run(clone())


def server_facts() -> dict[str, str]:
    async def read() -> dict[str, str]:
        connection = await asyncpg.connect(ADMIN_DSN)
        try:
            facts = {"version": await connection.fetchval("SELECT version()")}
            for name in ("shared_buffers", "synchronous_commit", "max_connections"):
                facts[name] = await connection.fetchval(f"SHOW {name}")
            return facts
        finally:
            await connection.close()

    return asyncio.run(read())


def log_file() -> str | None:
    """The server's log (Debian's clusters write stderr to /var/log/postgresql)."""
    version = fetchval("postgres", "SHOW server_version_num")
    major = int(version) // 10000
    found = sorted(glob.glob(f"/var/log/postgresql/postgresql-{major}-*.log"))
    return found[0] if found else None
