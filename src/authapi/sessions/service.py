"""Sessions: creation, refresh-token rotation (with the grace window and reuse
detection of the contract), revocation, listing and pruning."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, Update, bindparam, case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from authapi import metrics
from authapi.audit import service as audit
from authapi.client_address import Origin
from authapi.db import UTCDateTime, delete_batch
from authapi.errors import InvalidGrant, RefreshTokenReused
from authapi.revocations.publish import publish
from authapi.sessions.models import LoginSession
from authapi.sessions.refresh_tokens import RefreshTokenClaims
from authapi.users.models import User

logger = logging.getLogger(__name__)


class RevokeReason:
    LOGOUT = "logout"
    REVOKED = "revoked"  # RFC 7009 /revoke
    SESSION_DELETED = "session_deleted"
    LOGOUT_EVERYWHERE = "logout_everywhere"
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - a reason, not a password
    REFRESH_TOKEN_REUSED = "refresh_token_reused"  # noqa: S105
    ENDED_BY_ADMIN = "ended_by_admin"
    USER_DISABLED = "user_disabled"
    ROLE_CHANGED = "role_changed"


@dataclass(frozen=True)
class SessionPolicy:
    idle_timeout: timedelta
    max_lifetime: timedelta
    reuse_grace: timedelta

    def idle_deadline(self, now: datetime, absolute: datetime) -> datetime:
        return min(now + self.idle_timeout, absolute)


async def create_session(
    db: AsyncSession,
    policy: SessionPolicy,
    *,
    user_id: uuid.UUID,
    scope: str,
    now: datetime,
    user_agent: str | None,
    ip: str | None,
) -> LoginSession:
    absolute = now + policy.max_lifetime
    session = LoginSession(
        id=uuid.uuid4(),
        user_id=user_id,
        generation=0,
        scope=scope,
        created_at=now,
        last_used_at=now,
        rotated_at=None,
        expires_at=policy.idle_deadline(now, absolute),
        absolute_expires_at=absolute,
        user_agent=user_agent[:512] if user_agent else None,
        ip=ip,
    )
    db.add(session)
    await db.flush()
    return session


@dataclass(frozen=True)
class Rotation:
    """What a refresh needs of the session it advanced, and of the session's user."""

    session_id: uuid.UUID
    user_id: uuid.UUID
    generation: int
    scope: str
    expires_at: datetime
    role: str | None  # None, like user_active, if the user is gone
    user_active: bool | None


# The refresh path, in SQLAlchemy Core with statements built once: the ORM's
# bulk-update machinery and a separate read of the user cost most of a refresh's CPU
# (bench/README.md, profiles). The user's role and whether they may still log in come
# back with the UPDATE, as subqueries (SQLite's RETURNING cannot name an UPDATE's
# FROM tables).
_sessions = cast(Table, LoginSession.__table__)
_users = cast(Table, User.__table__)
_NOW = bindparam("p_now", type_=UTCDateTime())
_IDLE_DEADLINE = bindparam("p_idle_deadline", type_=UTCDateTime())


def _of_user(column: ColumnElement[Any]) -> Any:
    return select(column).where(_users.c.id == _sessions.c.user_id).scalar_subquery()


_ROTATION_COLUMNS = (
    _sessions.c.id,
    _sessions.c.user_id,
    _sessions.c.generation,
    _sessions.c.scope,
    _sessions.c.expires_at,
    _of_user(_users.c.role).label("role"),
    _of_user(_users.c.is_active).label("user_active"),
)
_ADVANCE = (
    update(_sessions)
    .where(
        _sessions.c.id == bindparam("p_session_id"),
        _sessions.c.generation == bindparam("p_generation"),
        _sessions.c.revoked_at.is_(None),
        _sessions.c.expires_at > _NOW,
    )
    .values(
        generation=_sessions.c.generation + 1,
        rotated_at=_NOW,
        last_used_at=_NOW,
        expires_at=case(
            (_sessions.c.absolute_expires_at < _IDLE_DEADLINE, _sessions.c.absolute_expires_at),
            else_=_IDLE_DEADLINE,
        ),
    )
    .returning(*_ROTATION_COLUMNS)
)
_CURRENT = select(*_ROTATION_COLUMNS, _sessions.c.rotated_at, _sessions.c.revoked_at).where(
    _sessions.c.id == bindparam("p_session_id")
)


async def rotate(
    db: AsyncSession, policy: SessionPolicy, presented: RefreshTokenClaims, now: datetime
) -> Rotation:
    """Advance the session of a presented refresh token; its new generation names the
    refresh token to hand out.

    One conditional UPDATE does the rotation, so of any number of concurrent requests
    with the same token exactly one advances the session; PostgreSQL makes the others
    wait for the row and re-check the condition, SQLite runs them one after another.
    The others then find the token one generation behind: within the grace window they
    are answered with the session's newest token; later, it is a replay and ends the
    session.
    """
    connection = await db.connection()
    advanced = (
        await connection.execute(
            _ADVANCE,
            {
                "p_session_id": presented.session_id,
                "p_generation": presented.generation,
                "p_now": now,
                "p_idle_deadline": now + policy.idle_timeout,
            },
        )
    ).one_or_none()
    if advanced is not None:
        return Rotation(*advanced)

    current = (
        await connection.execute(_CURRENT, {"p_session_id": presented.session_id})
    ).one_or_none()
    if current is None or current.revoked_at is not None or current.expires_at <= now:
        raise InvalidGrant()
    session = Rotation(*current[: len(_ROTATION_COLUMNS)])
    behind = session.generation - presented.generation
    rotated_at = current.rotated_at
    if behind == 1 and rotated_at is not None and now <= rotated_at + policy.reuse_grace:
        return session
    if behind >= 1:
        await revoke(db, session.session_id, RevokeReason.REFRESH_TOKEN_REUSED, now)
        logger.warning(
            "refresh token reuse: session %s of user %s revoked (token %d generations old)",
            session.session_id,
            session.user_id,
            behind,
        )
        raise RefreshTokenReused(session.user_id)
    raise InvalidGrant()  # a generation from the future: only a leaked key makes one


def _revoke_where(now: datetime, reason: str, *conditions: ColumnElement[bool]) -> Update:
    return (
        update(LoginSession)
        .where(LoginSession.revoked_at.is_(None), *conditions)
        .values(revoked_at=now, revoked_reason=reason, expires_at=now)
        .execution_options(synchronize_session=False)
    )


async def revoke(
    db: AsyncSession, session_id: uuid.UUID, reason: str, now: datetime
) -> uuid.UUID | None:
    """End a session, and its access tokens on every instance; returns its user's id,
    or None if it was not active."""
    user_id = await db.scalar(
        _revoke_where(now, reason, LoginSession.id == session_id).returning(LoginSession.user_id)
    )
    if user_id is not None:
        await publish(db, [session_id], now)
        metrics.count_revocations(db, reason, 1)
    return user_id


async def end_session(
    db: AsyncSession,
    session_id: uuid.UUID,
    *,
    reason: str,
    event: audit.Event,
    now: datetime,
    origin: Origin,
) -> None:
    """Revoke a session (if it is still active) and record who ended it."""
    user_id = await revoke(db, session_id, reason, now)
    if user_id is not None:
        audit.record(db, event, at=now, origin=origin, user_id=user_id, session_id=session_id)


async def revoke_all(
    db: AsyncSession,
    user_id: uuid.UUID,
    reason: str,
    now: datetime,
    *,
    keep: uuid.UUID | None = None,
) -> int:
    """End every session of a user (but `keep`), and their access tokens on every
    instance; returns how many were active."""
    conditions = [LoginSession.user_id == user_id]
    if keep is not None:
        conditions.append(LoginSession.id != keep)
    revoked = list(
        await db.scalars(_revoke_where(now, reason, *conditions).returning(LoginSession.id))
    )
    await publish(db, revoked, now)
    metrics.count_revocations(db, reason, len(revoked))
    return len(revoked)


async def get_own(
    db: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID
) -> LoginSession | None:
    return await db.scalar(
        select(LoginSession).where(LoginSession.id == session_id, LoginSession.user_id == user_id)
    )


async def list_active(db: AsyncSession, user_id: uuid.UUID, now: datetime) -> list[LoginSession]:
    rows = await db.scalars(
        select(LoginSession)
        .where(
            LoginSession.user_id == user_id,
            LoginSession.revoked_at.is_(None),
            LoginSession.expires_at > now,
        )
        .order_by(LoginSession.last_used_at.desc())
    )
    return list(rows)


async def prune_batch(db: AsyncSession, ended_before: datetime, limit: int) -> int:
    """Delete up to `limit` sessions that ended (expired or revoked) before the cutoff."""
    return await delete_batch(db, LoginSession.expires_at, ended_before, limit)
