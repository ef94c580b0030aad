"""Database plumbing: table metadata, the engine, and the one transaction per request."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import CursorResult, DateTime, MetaData, delete, event, select
from sqlalchemy.engine import Dialect, ExceptionContext
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import (
    DeclarativeBase,
    InstrumentedAttribute,
    ORMExecuteState,
    Session,
    SessionTransaction,
)
from sqlalchemy.types import TypeDecorator

from authapi.config import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC instants on every database.

    SQLite has no time zone type: values are stored as UTC text in one fixed format,
    so comparing them in SQL compares the instants.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Behind a pooler in transaction mode each transaction may run on another server
# connection, where a statement prepared on the first one does not exist, or one of the
# same name from another client does. So asyncpg keeps no statement cache (it then also
# re-prepares within a transaction rather than trust the pooler), and names each
# statement uniquely; SQLAlchemy's own cache of prepared statements is off too
# (SQLAlchemy's asyncpg dialect documentation, "Prepared Statement Name with PGBouncer").
_TRANSACTION_POOLER_ARGS: dict[str, Any] = {
    "statement_cache_size": 0,  # asyncpg's
    "prepared_statement_cache_size": 0,  # SQLAlchemy's adapter's
    "prepared_statement_name_func": lambda: f"__asyncpg_{uuid.uuid4()}__",
}

# Execution options of a connection that only reads (see the SQLite "begin" hook).
READ_ONLY = {"authapi_read_only": True}


def create_engine(settings: Settings) -> AsyncEngine:
    url = settings.resolved_database_url
    if settings.is_sqlite:
        return _create_sqlite_engine(url, settings.db_timeout)
    engine = create_async_engine(
        url,
        # Every connection stays open once opened: an overflow connection (SQLAlchemy's
        # default) is closed whenever it is handed back to a pool that is full, so a
        # steady load above the pool's size opened and closed PostgreSQL connections
        # all along (18-27/s at 32 concurrent refreshes with 10 kept and 10
        # overflow), each new one a PostgreSQL backend forked and authenticated, and
        # every stall of the load a burst of them. Past the pool, requests queue.
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=settings.db_timeout,
        # No pre-ping: it costs every request two round trips (asyncpg's BEGIN;
        # ROLLBACK). A connection found dead instead fails its request with a 503 and,
        # marked a disconnect below, makes the pool replace it and every older one;
        # recycling keeps idle ones from dying behind a firewall's idle timeout.
        pool_recycle=1800,
        connect_args={
            "timeout": settings.db_timeout,
            "command_timeout": settings.db_timeout,
            **(_TRANSACTION_POOLER_ARGS if settings.database_pooler == "transaction" else {}),
        },
    )

    @event.listens_for(engine.sync_engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        # When the server stops, crashes or restarts, asyncpg reports the lost connection
        # in ways SQLAlchemy does not all recognise as a disconnect: a session the server
        # terminated (SQLSTATE 57P01-57P05), "cannot connect now" while it shuts down or
        # starts (57P03), a connection exception (class 08), too many connections or
        # another lack of resources (class 53), or an InternalClientError
        # when the server's farewell arrives between two queries and leaves the protocol
        # stuck. Marked as disconnects, they make SQLAlchemy discard the connection (and
        # recycle the pool's others, dead as well) instead of handing it out again, and
        # the error says `connection_invalidated`, which errors.py answers with 503.
        # So is a write refused as read-only (25006): the connection is to a hot standby
        # or began read-only (`default_transaction_read_only`), and stays so; a new one
        # may reach the promoted primary or take the setting back.
        error = context.original_exception
        sqlstate = str(getattr(error, "sqlstate", None) or "")
        internal = getattr(engine.dialect.loaded_dbapi, "InternalClientError", ())
        if (
            sqlstate.startswith(("08", "53", "57P"))
            or sqlstate == "25006"
            or isinstance(error, internal)
        ):
            context.is_disconnect = True

    return engine


def _create_sqlite_engine(url: str, timeout: float) -> AsyncEngine:
    # One connection per process. SQLite runs one write transaction at a time anyway
    # (every transaction here takes the write lock); with a single connection the
    # others wait in the pool's queue, in order, instead of each opening a connection
    # (and a thread) to spin on the lock. Past `timeout` in the queue: 503.
    engine = create_async_engine(
        url,
        pool_size=1,
        max_overflow=0,
        pool_timeout=timeout,
        connect_args={"timeout": timeout},
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control from the driver, so that every transaction can
        # start with BEGIN IMMEDIATE below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Take the write lock up front. A deferred transaction that reads and then
        # writes fails at once with "database is locked" when another process wrote
        # meanwhile; an immediate one waits its turn (busy_timeout) instead. Only a
        # connection marked READ_ONLY, which never writes, reads without the lock.
        if connection.get_execution_options().get("authapi_read_only"):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


# session.info key: set once this transaction sent a write (a flush or a DML statement).
WROTE = "authapi_wrote"
_AFTER_COMMIT = "authapi_after_commit"


class TrackedSession(Session):
    """The Session behind every AsyncSession of ours: it notes when its transaction
    has written anything, for `end_read_only_transaction`, and runs what `after_commit`
    was given once it commits."""


def after_commit(db: AsyncSession, callback: Callable[[], None]) -> None:
    """Call `callback` once `db`'s transaction has committed; never if it rolls back.
    For what must not happen before the change is visible to others (dropping a cached
    copy of it, say: a reader in between would cache the old state again)."""
    db.info.setdefault(_AFTER_COMMIT, []).append(callback)


@event.listens_for(TrackedSession, "after_commit")
def _run_after_commit(session: Session) -> None:
    for callback in session.info.pop(_AFTER_COMMIT, ()):
        callback()


@event.listens_for(TrackedSession, "after_flush")
def _note_flush(session: Session, _flush_context: Any) -> None:
    session.info[WROTE] = True


@event.listens_for(TrackedSession, "do_orm_execute")
def _note_statement(state: ORMExecuteState) -> None:
    # UPDATE ... RETURNING and DELETE statements write without a flush.
    if not state.is_select:
        state.session.info[WROTE] = True


@event.listens_for(TrackedSession, "after_transaction_end")
def _forget_writes(session: Session, transaction: SessionTransaction) -> None:
    # Only the outermost transaction's end (commit or rollback) takes its writes with
    # it; a savepoint's does not.
    if transaction.parent is None:
        session.info.pop(WROTE, None)
        session.info.pop(_AFTER_COMMIT, None)


def create_sessionmaker(
    engine: AsyncEngine,
    info: dict[str, Any] | None = None,
    *,
    session_class: type[TrackedSession] = TrackedSession,
) -> async_sessionmaker[AsyncSession]:
    """`info`: what every session's `info` starts with. `session_class`: the Session
    behind each AsyncSession (a TrackedSession), where event listeners for these
    sessions alone go."""
    return async_sessionmaker(
        engine,
        expire_on_commit=False,
        autoflush=False,
        info=info,
        sync_session_class=session_class,
    )


async def delete_batch(
    db: AsyncSession,
    column: InstrumentedAttribute[Any],
    before: Any,
    limit: int,
    *,
    oldest_first: bool = False,
) -> int:
    """Delete up to `limit` rows whose `column` is below `before`: one short statement,
    so that pruning never holds locks for long. `oldest_first`: the rows of lowest
    `column`, read off its index in order (`column` must be indexed), for a table whose
    expired rows are a large share of it."""
    table = column.class_
    primary_key = table.__mapper__.primary_key[0]
    batch = select(primary_key).where(column < before).limit(limit)
    if oldest_first:
        batch = batch.order_by(column)
    result: CursorResult[Any] = await db.execute(  # type: ignore[assignment]
        delete(table)
        .where(primary_key.in_(batch.scalar_subquery()))
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


class PendingWrites(RuntimeError):
    """A programming error: the transaction to be ended early has changes, which
    ending it would commit halfway through a use case."""


async def end_read_only_transaction(db: AsyncSession) -> None:
    """End the request's transaction, which has only read so far, and give its
    connection back before slow work that needs none (password hashing). A flood of
    logins must not hold every pooled connection, or SQLite's write lock, while it
    waits for a hashing thread. The next statement starts a new transaction.

    Refuses (PendingWrites) when the transaction holds anything to write or has
    already written: that must commit with the rest of the use case, or not at all."""
    if not isinstance(db.sync_session, TrackedSession):
        raise PendingWrites("this session does not track its writes (create_sessionmaker)")
    if not db.in_transaction():
        return
    if db.new or db.dirty or db.deleted or db.sync_session.info.get(WROTE):
        raise PendingWrites("the transaction has changes; it cannot end before the use case")
    await db.commit()


class KeepsChanges(Exception):  # noqa: N818 - a trait of other errors, not an error itself
    """Base for errors whose request must still commit: a detected refresh-token reuse
    revokes the session and then refuses the request."""


@asynccontextmanager
async def transaction(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on error (unless it `KeepsChanges`)."""
    async with maker() as db:
        try:
            yield db
        except KeepsChanges:
            await db.commit()
            raise
        except BaseException:
            await db.rollback()
            raise
        await db.commit()
