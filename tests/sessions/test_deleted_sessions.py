"""The revocations of sessions deleted with their account (`deleted_sessions`): kept
before the rows go, pruned once their access tokens have expired."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from authapi.sessions import service as sessions
from authapi.sessions.models import DeletedSession, LoginSession, RevokeReason
from authapi.users.models import User
from tests.support.factories import session_row, user_row

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


async def test_recent_revocations_are_kept_and_outlive_the_account(
    db_session: AsyncSession,
) -> None:
    user = user_row(now=NOW - DAY)
    db_session.add(user)
    await db_session.flush()
    long_ago, recent, live = (
        session_row(user, now=NOW - DAY, idle=DAY, lifetime=2 * DAY) for _ in range(3)
    )
    long_ago.revoked_at = NOW - timedelta(hours=1)
    recent.revoked_at = NOW - timedelta(seconds=10)
    db_session.add_all([long_ago, recent, live])
    await db_session.flush()
    await sessions.revoke_all(db_session, user.id, RevokeReason.ACCOUNT_DELETED, NOW)

    await sessions.keep_revocations(db_session, user.id, since=NOW - timedelta(minutes=5))
    await db_session.execute(delete(User).where(User.id == user.id))
    # Other tests' rows may be there too: only this test's are looked at.
    ids = [long_ago.id, recent.id, live.id]
    assert (
        list(await db_session.scalars(select(LoginSession.id).where(LoginSession.id.in_(ids))))
        == []
    )
    query = select(DeletedSession.id, DeletedSession.revoked_at).where(DeletedSession.id.in_(ids))
    kept = dict((await db_session.execute(query)).all())
    assert kept == {recent.id: NOW - timedelta(seconds=10), live.id: NOW}


# Long before any other test's rows: the prune below touches none of theirs.
LONG_AGO = datetime(2001, 1, 1, tzinfo=UTC)


async def test_prune_removes_them_after_the_cutoff(db_session: AsyncSession) -> None:
    now = LONG_AGO
    old, young = (
        DeletedSession(id=session.id, revoked_at=at)
        for session, at in (
            (session_row(user_row(now=now), now=now, idle=DAY, lifetime=DAY), now - DAY),
            (session_row(user_row(now=now), now=now, idle=DAY, lifetime=DAY), now),
        )
    )
    db_session.add_all([old, young])
    await db_session.flush()
    await sessions.prune_batch(db_session, now - timedelta(minutes=5), 10_000)
    left = select(DeletedSession.id).where(DeletedSession.id.in_([old.id, young.id]))
    assert list(await db_session.scalars(left)) == [young.id]
