"""`sessions.rotation.rotate` on its own, on both databases: the session advances one
generation per refresh, a duplicate within the grace window gets the newest generation,
an older token after it ends the session, and anything else is refused unchanged.
The same rules over HTTP, concurrency included: tests/sessions/test_rotation.py."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from authapi.errors import InvalidGrant, RefreshTokenReused
from authapi.sessions.models import LoginSession, RevokeReason
from authapi.sessions.rotation import RefreshTokenClaims, Rotation, rotate
from authapi.sessions.service import SessionPolicy, revoke
from authapi.users.models import User
from tests.support.factories import session_row, user_row

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
IDLE = timedelta(hours=1)
LIFETIME = timedelta(hours=2)
GRACE = timedelta(seconds=10)
POLICY = SessionPolicy(idle_timeout=IDLE, max_lifetime=LIFETIME, reuse_grace=GRACE)


@pytest.fixture
async def login(db_session: AsyncSession) -> LoginSession:
    """A session created at NOW, on its first refresh token (generation 0)."""
    user = user_row(now=NOW)
    db_session.add(user)
    await db_session.flush()  # before its session: no relationship orders the inserts
    login = session_row(user, now=NOW, idle=IDLE, lifetime=LIFETIME)
    db_session.add(login)
    await db_session.flush()
    return login


def token(login: LoginSession, generation: int) -> RefreshTokenClaims:
    """What a refresh token of this session and generation decodes to."""
    return RefreshTokenClaims(session_id=login.id, generation=generation)


async def stored(db: AsyncSession, login: LoginSession) -> LoginSession:
    """The session's row as the database now holds it (rotate writes it in SQL)."""
    query = select(LoginSession).where(LoginSession.id == login.id)
    row = await db.scalar(query.execution_options(populate_existing=True))
    assert row is not None
    return row


class TestRotation:
    async def test_advances_the_session_one_generation(
        self, db_session: AsyncSession, login: LoginSession
    ) -> None:
        later = NOW + timedelta(minutes=5)

        rotation = await rotate(db_session, POLICY, token(login, 0), later)

        assert rotation == Rotation(
            session_id=login.id,
            user_id=login.user_id,
            generation=1,
            scope="profile",
            amr="pwd",
            expires_at=later + IDLE,
            role="user",
            user_active=True,
        )
        row = await stored(db_session, login)
        assert (row.generation, row.rotated_at, row.last_used_at) == (1, later, later)
        assert row.expires_at == later + IDLE
        assert row.revoked_at is None

    async def test_then_only_the_new_generation_rotates(
        self, db_session: AsyncSession, login: LoginSession
    ) -> None:
        await rotate(db_session, POLICY, token(login, 0), NOW)

        rotation = await rotate(db_session, POLICY, token(login, 1), NOW + timedelta(minutes=1))

        assert rotation.generation == 2
        assert (await stored(db_session, login)).generation == 2

    async def test_the_idle_deadline_stops_at_the_absolute_lifetime(
        self, db_session: AsyncSession, login: LoginSession
    ) -> None:
        await rotate(db_session, POLICY, token(login, 0), NOW + timedelta(minutes=59))

        rotation = await rotate(db_session, POLICY, token(login, 1), NOW + timedelta(minutes=118))

        assert rotation.expires_at == login.absolute_expires_at == NOW + timedelta(hours=2)
        assert (await stored(db_session, login)).expires_at == login.absolute_expires_at

    async def test_tells_the_caller_when_the_user_is_disabled(
        self, db_session: AsyncSession, login: LoginSession
    ) -> None:
        user = await db_session.get(User, login.user_id)
        assert user is not None
        user.is_active = False
        await db_session.flush()

        rotation = await rotate(db_session, POLICY, token(login, 0), NOW)

        assert rotation.user_active is False


Refusal = Callable[[AsyncSession, LoginSession], Awaitable[tuple[RefreshTokenClaims, datetime]]]


async def revoked(db: AsyncSession, login: LoginSession) -> tuple[RefreshTokenClaims, datetime]:
    await revoke(db, login.id, RevokeReason.LOGOUT, NOW)
    return token(login, 0), NOW + timedelta(minutes=1)


async def expired(db: AsyncSession, login: LoginSession) -> tuple[RefreshTokenClaims, datetime]:
    return token(login, 0), login.expires_at  # the session ends at that instant


async def from_the_future(
    db: AsyncSession, login: LoginSession
) -> tuple[RefreshTokenClaims, datetime]:
    return token(login, 1), NOW  # only a leaked key makes one


async def of_an_unknown_session(
    db: AsyncSession, login: LoginSession
) -> tuple[RefreshTokenClaims, datetime]:
    return RefreshTokenClaims(session_id=uuid.uuid4(), generation=0), NOW


class TestRefused:
    @pytest.mark.parametrize(
        "refusal",
        [revoked, expired, from_the_future, of_an_unknown_session],
        ids=lambda refusal: refusal.__name__,
    )
    async def test_is_invalid_grant_and_changes_nothing(
        self, db_session: AsyncSession, login: LoginSession, refusal: Refusal
    ) -> None:
        claims, at = await refusal(db_session, login)
        before = await stored(db_session, login)
        snapshot = (before.generation, before.expires_at, before.revoked_at)

        with pytest.raises(InvalidGrant) as raised:
            await rotate(db_session, POLICY, claims, at)

        assert type(raised.value) is InvalidGrant  # not a reuse: no session ends
        after = await stored(db_session, login)
        assert (after.generation, after.expires_at, after.revoked_at) == snapshot


class TestGraceWindow:
    @pytest.mark.parametrize("delay", [timedelta(0), GRACE], ids=["at once", "at its end"])
    async def test_a_duplicate_gets_the_newest_generation_without_rotating_again(
        self, db_session: AsyncSession, login: LoginSession, delay: timedelta
    ) -> None:
        first = await rotate(db_session, POLICY, token(login, 0), NOW)

        duplicate = await rotate(db_session, POLICY, token(login, 0), NOW + delay)

        assert duplicate == first
        row = await stored(db_session, login)
        assert (row.generation, row.rotated_at, row.revoked_at) == (1, NOW, None)


class TestReuseDetection:
    async def test_an_old_token_after_the_window_ends_the_session(
        self, db_session: AsyncSession, login: LoginSession
    ) -> None:
        await rotate(db_session, POLICY, token(login, 0), NOW)
        replayed_at = NOW + GRACE + timedelta(seconds=1)

        with pytest.raises(RefreshTokenReused) as raised:
            await rotate(db_session, POLICY, token(login, 0), replayed_at)

        assert raised.value.user_id == login.user_id
        row = await stored(db_session, login)
        assert row.revoked_reason == RevokeReason.REFRESH_TOKEN_REUSED
        assert row.revoked_at == row.expires_at == replayed_at
        # The newest token, the one the legitimate client holds, ends with it.
        with pytest.raises(InvalidGrant):
            await rotate(db_session, POLICY, token(login, 1), replayed_at)

    async def test_two_generations_behind_is_reuse_even_within_the_window(
        self, db_session: AsyncSession, login: LoginSession
    ) -> None:
        await rotate(db_session, POLICY, token(login, 0), NOW)
        await rotate(db_session, POLICY, token(login, 1), NOW + timedelta(seconds=1))

        with pytest.raises(RefreshTokenReused):
            await rotate(db_session, POLICY, token(login, 0), NOW + timedelta(seconds=2))

        assert (await stored(db_session, login)).revoked_at is not None
