"""db.py's guard on ending a transaction early, on a real AsyncSession of each database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import sqlalchemy.exc
import sqlalchemy.pool
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authapi.config import Settings
from authapi.db import (
    PendingWrites,
    create_engine,
    create_sessionmaker,
    end_read_only_transaction,
    transaction,
)
from authapi.users.models import User


@pytest.fixture
async def maker(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(settings)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


def _user(email: str) -> User:
    return User(
        id=uuid.uuid4(),
        email=email,
        password_hash="not-a-hash",
        role="user",
        is_active=True,
        created_at=datetime.now(UTC),
    )


@pytest.fixture(autouse=True)
async def _clean(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[None]:
    yield
    async with transaction(maker) as db:
        await db.execute(delete(User).where(User.email.like("%@example.com")))


@pytest.fixture
async def existing(maker: async_sessionmaker[AsyncSession]) -> User:
    user = _user(f"{uuid.uuid4().hex}@example.com")
    async with transaction(maker) as db:
        db.add(user)
    return user


async def _count(maker: async_sessionmaker[AsyncSession], email: str) -> int:
    async with maker() as db:
        return int(await db.scalar(select(func.count()).where(User.email == email)) or 0)


class TestEndReadOnlyTransaction:
    async def test_ends_a_transaction_that_only_read(
        self, maker: async_sessionmaker[AsyncSession], existing: User
    ) -> None:
        async with maker() as db:
            assert await db.get(User, existing.id) is not None
            assert db.in_transaction()
            await end_read_only_transaction(db)
            assert not db.in_transaction()
            # The session goes on: the next statement starts a new transaction.
            db.add(_user("after@example.com"))
            await db.commit()
        assert await _count(maker, "after@example.com") == 1

    async def test_does_nothing_without_a_transaction(
        self, maker: async_sessionmaker[AsyncSession]
    ) -> None:
        async with maker() as db:
            await end_read_only_transaction(db)
            assert not db.in_transaction()

    async def test_refuses_a_pending_new_object(
        self, maker: async_sessionmaker[AsyncSession]
    ) -> None:
        async with maker() as db:
            await db.scalar(select(func.count()).select_from(User))
            db.add(_user("pending@example.com"))
            with pytest.raises(PendingWrites):
                await end_read_only_transaction(db)
            await db.rollback()
        assert await _count(maker, "pending@example.com") == 0

    async def test_refuses_a_changed_object(
        self, maker: async_sessionmaker[AsyncSession], existing: User
    ) -> None:
        async with maker() as db:
            user = await db.get(User, existing.id)
            assert user is not None
            user.role = "admin"
            with pytest.raises(PendingWrites):
                await end_read_only_transaction(db)

    async def test_refuses_a_deleted_object(
        self, maker: async_sessionmaker[AsyncSession], existing: User
    ) -> None:
        async with maker() as db:
            user = await db.get(User, existing.id)
            await db.delete(user)
            with pytest.raises(PendingWrites):
                await end_read_only_transaction(db)

    async def test_refuses_a_flushed_uncommitted_write(
        self, maker: async_sessionmaker[AsyncSession]
    ) -> None:
        async with maker() as db:
            db.add(_user("flushed@example.com"))
            await db.flush()
            # Nothing is pending any more: only the noted flush tells.
            assert not db.new
            assert not db.dirty
            with pytest.raises(PendingWrites):
                await end_read_only_transaction(db)
            await db.rollback()
        assert await _count(maker, "flushed@example.com") == 0

    async def test_refuses_after_an_update_statement(
        self, maker: async_sessionmaker[AsyncSession], existing: User
    ) -> None:
        async with maker() as db:
            await db.execute(
                update(User)
                .where(User.id == existing.id)
                .values(role="admin")
                .execution_options(synchronize_session=False)
            )
            with pytest.raises(PendingWrites):
                await end_read_only_transaction(db)
            await db.rollback()
        async with maker() as db:
            user = await db.get(User, existing.id)
            assert user is not None
            assert user.role == "user"

    @pytest.mark.parametrize("end", ["commit", "rollback"])
    async def test_a_write_is_forgotten_once_its_transaction_ends(
        self, maker: async_sessionmaker[AsyncSession], end: str
    ) -> None:
        async with maker() as db:
            db.add(_user("ended@example.com"))
            await db.flush()
            await getattr(db, end)()
            await db.scalar(select(func.count()).select_from(User))
            await end_read_only_transaction(db)
            assert not db.in_transaction()

    async def test_refuses_a_session_that_does_not_track_its_writes(
        self, maker: async_sessionmaker[AsyncSession]
    ) -> None:
        untracked = async_sessionmaker(maker.kw["bind"])
        async with untracked() as db:
            await db.scalar(select(func.count()).select_from(User))
            with pytest.raises(PendingWrites):
                await end_read_only_transaction(db)


class TestConnectionPool:
    """No more connections than the pool's size, each kept once opened: with overflow
    connections, every burst above the size opened PostgreSQL connections and closed
    them again as they were handed back."""

    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        # The timeout is also the connect's: long enough for a busy machine's connects,
        # short for the one wait that must run out.
        return {"db_pool_size": 3, "db_timeout": 1.0}

    async def test_holds_at_most_its_size_and_keeps_every_one(self, settings: Settings) -> None:
        engine = create_engine(settings)
        try:
            size = 1 if settings.is_sqlite else 3  # SQLite: one connection (db.py)
            held = [await engine.connect() for _ in range(size)]
            with pytest.raises(sqlalchemy.exc.TimeoutError):
                await engine.connect()  # waits its db_timeout in the queue, no overflow
            for connection in held:
                await connection.close()
            pool = engine.pool
            assert isinstance(pool, sqlalchemy.pool.QueuePool)
            assert pool.checkedin() == size  # handed back, not closed
        finally:
            await engine.dispose()
