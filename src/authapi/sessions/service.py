"""Sessions: creation, revocation, listing and pruning, and the policy of their
lifetimes. Refresh-token rotation is in rotation.py."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Update, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from authapi import auth_methods, metrics
from authapi.audit import service as audit
from authapi.auth_methods import AuthMethods
from authapi.client_address import Requester
from authapi.config import Settings
from authapi.db import delete_batch
from authapi.errors import NotFound
from authapi.revocations.publish import publish
from authapi.sessions.models import DeletedSession, LoginSession, RevokeReason


@dataclass(frozen=True)
class SessionPolicy:
    idle_timeout: timedelta
    max_lifetime: timedelta
    reuse_grace: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionPolicy:
        return cls(
            idle_timeout=timedelta(seconds=settings.session_idle_timeout),
            max_lifetime=timedelta(seconds=settings.session_max_lifetime),
            reuse_grace=timedelta(seconds=settings.refresh_reuse_grace),
        )

    def idle_deadline(self, now: datetime, absolute: datetime) -> datetime:
        return min(now + self.idle_timeout, absolute)


async def create_session(
    db: AsyncSession,
    policy: SessionPolicy,
    *,
    user_id: uuid.UUID,
    scope: str,
    amr: AuthMethods,
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
        amr=auth_methods.to_column(amr),
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


def _revoke_where(now: datetime, reason: RevokeReason, *conditions: ColumnElement[bool]) -> Update:
    return (
        update(LoginSession)
        .where(LoginSession.revoked_at.is_(None), *conditions)
        .values(revoked_at=now, revoked_reason=reason.value, expires_at=now)
        .execution_options(synchronize_session=False)
    )


async def revoke(
    db: AsyncSession, session_id: uuid.UUID, reason: RevokeReason, now: datetime
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
    reason: RevokeReason,
    event: audit.Event,
    now: datetime,
    requester: Requester,
) -> None:
    """Revoke a session (if it is still active) and record who ended it."""
    user_id = await revoke(db, session_id, reason, now)
    if user_id is not None:
        audit.record(db, event, at=now, requester=requester, user_id=user_id, session_id=session_id)


async def revoke_all(
    db: AsyncSession,
    user_id: uuid.UUID,
    reason: RevokeReason,
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


async def end_own_session(
    db: AsyncSession,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    *,
    now: datetime,
    requester: Requester,
) -> None:
    """A user ends one of their sessions; NotFound for anybody else's."""
    session = await db.scalar(
        select(LoginSession.id).where(
            LoginSession.id == session_id, LoginSession.user_id == user_id
        )
    )
    if session is None:
        raise NotFound("No such session.")
    await end_session(
        db,
        session_id,
        reason=RevokeReason.SESSION_DELETED,
        event=audit.Event.SESSION_REVOKED,
        now=now,
        requester=requester,
    )


async def end_all_own_sessions(
    db: AsyncSession,
    user_id: uuid.UUID,
    *,
    current: uuid.UUID,
    now: datetime,
    requester: Requester,
) -> None:
    """A user logs out everywhere from their session `current`, which ends too."""
    await revoke_all(db, user_id, RevokeReason.LOGOUT_EVERYWHERE, now)
    audit.record(
        db,
        audit.Event.ALL_SESSIONS_REVOKED,
        at=now,
        requester=requester,
        user_id=user_id,
        session_id=current,
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


async def keep_revocations(db: AsyncSession, user_id: uuid.UUID, since: datetime) -> None:
    """Before the user's rows are deleted: copy the revocations of their sessions
    revoked after `since` (one access-token lifetime ago) to `deleted_sessions`, where
    every instance's poll still finds them."""
    await db.execute(
        insert(DeletedSession).from_select(
            ["id", "revoked_at"],
            select(LoginSession.id, LoginSession.revoked_at).where(
                LoginSession.user_id == user_id, LoginSession.revoked_at > since
            ),
        )
    )


async def prune_batch(db: AsyncSession, ended_before: datetime, limit: int) -> int:
    """Delete up to `limit` sessions that ended (expired or revoked) before the cutoff,
    and the kept revocations of deleted accounts' sessions."""
    pruned = await delete_batch(db, LoginSession.expires_at, ended_before, limit)
    if pruned < limit:
        pruned += await delete_batch(db, DeletedSession.revoked_at, ended_before, limit - pruned)
    return pruned
