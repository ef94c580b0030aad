"""The session of service-level tests (`db_session`, tests/support/database.py) on the
app's own engine, on both databases: what a test writes, commits included, is gone
when it ends, and the code under test may still commit, roll back and use savepoints.
On SQLite the final rollback undoes a commit only because the app's engine emits BEGIN
itself: on aiosqlite's own transaction handling the commit would stay."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from authapi.users.models import User
from tests.support.database import rolled_back_session
from tests.support.factories import new_email, user_row

NOW = datetime(2026, 1, 1, tzinfo=UTC)
# Written, and committed, by both tests of TestEachTestStartsClean.
ISOLATION_EMAIL = "isolation@example.com"


async def emails(db: AsyncSession) -> set[str]:
    return set(await db.scalars(select(User.email)))


class TestEachTestStartsClean:
    """Both tests write the same user and commit; whichever runs after the other (in the
    same worker: each worker has databases of its own) finds nothing of it. The test
    below proves the same within one test, wherever the workers run these."""

    async def test_one_writes_and_commits(self, db_session: AsyncSession) -> None:
        assert ISOLATION_EMAIL not in await emails(db_session)
        db_session.add(user_row(now=NOW, email=ISOLATION_EMAIL))
        await db_session.commit()
        assert ISOLATION_EMAIL in await emails(db_session)

    async def test_another_writes_and_commits(self, db_session: AsyncSession) -> None:
        assert ISOLATION_EMAIL not in await emails(db_session)
        db_session.add(user_row(now=NOW, email=ISOLATION_EMAIL))
        await db_session.commit()
        assert ISOLATION_EMAIL in await emails(db_session)


async def test_a_commit_inside_is_undone_when_the_session_ends(db_engine: AsyncEngine) -> None:
    email = new_email()
    async with rolled_back_session(db_engine) as db:
        db.add(user_row(now=NOW, email=email))
        await db.commit()
        assert email in await emails(db)

    async with rolled_back_session(db_engine) as db:  # the next test's
        assert email not in await emails(db)
    async with db_engine.connect() as connection:  # and anybody else's
        assert email not in set(await connection.scalars(select(User.email)))


async def test_rollback_undoes_only_what_came_after_the_last_commit(
    db_session: AsyncSession,
) -> None:
    committed, rolled_back = new_email(), new_email()
    db_session.add(user_row(now=NOW, email=committed))
    await db_session.commit()
    db_session.add(user_row(now=NOW, email=rolled_back))
    await db_session.flush()

    await db_session.rollback()

    found = await emails(db_session)
    assert committed in found
    assert rolled_back not in found


async def test_a_failed_savepoint_leaves_the_transaction_usable(db_session: AsyncSession) -> None:
    first, later = new_email(), new_email()
    db_session.add(user_row(now=NOW, email=first))
    await db_session.flush()

    savepoint = await db_session.begin_nested()
    db_session.add(user_row(now=NOW, email=first))  # a duplicate email
    with pytest.raises(IntegrityError):
        await db_session.flush()
    await savepoint.rollback()
    db_session.add(user_row(now=NOW, email=later))
    await db_session.flush()

    found = await emails(db_session)
    assert {first, later} <= found
