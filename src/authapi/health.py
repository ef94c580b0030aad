"""Liveness and readiness: is the process up, and can it do its job (write to the database)?

A database that answers reads but refuses writes (a read-only file or folder, a full disk,
a PostgreSQL hot standby or `default_transaction_read_only`) fails every login and
refresh, so readiness proves a write. The probe writes to `alembic_version`, the one table
every schema at any revision has, and leaves nothing behind.
"""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from authapi.dependencies import Context
from authapi.error_bodies import responses
from authapi.errors import ServiceUnavailable

router = APIRouter(tags=["health"])

# SQLite: a row as large as a page (4096 bytes, SQLite's default page size), so that it
# needs a new page, which a database at its size limit cannot give; deleted again before
# the commit. The commit is the point: with WAL nothing reaches the disk before it, and
# it needs the write lock, writable `-wal` and `-shm` files and room on the disk. What
# remains is a free page, which the next probe takes again: probes never grow the file.
_SQLITE_PROBE = (
    "INSERT INTO alembic_version (version_num) VALUES (zeroblob(4096))",
    "DELETE FROM alembic_version WHERE rowid = last_insert_rowid()",
)
# PostgreSQL refuses any writing statement on a read-only transaction or a hot standby
# when it starts, before looking for rows: an update of no row, rolled back, proves it
# with no row version and no WAL record per probe.
_POSTGRESQL_PROBE = ("UPDATE alembic_version SET version_num = version_num WHERE false",)


@router.get("/healthz", responses=responses())
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses=responses(ServiceUnavailable))
async def readyz(context: Context) -> dict[str, str]:
    """The database takes writes (else 503, and the log says why)."""
    async with context.engine.connect() as connection:
        await _prove_writable(connection)
    return {"status": "ok"}


async def _prove_writable(connection: AsyncConnection) -> None:
    # A database error here is answered by errors.py: 503, and a log line naming the cause.
    sqlite = connection.dialect.name == "sqlite"
    for statement in _SQLITE_PROBE if sqlite else _POSTGRESQL_PROBE:
        await connection.execute(text(statement))
    if sqlite:
        await connection.commit()
    else:
        await connection.rollback()
