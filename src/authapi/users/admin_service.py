"""What admins do to accounts: list them, disable them, change their role, end their
sessions, mail them a password reset link."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from authapi.account import mails
from authapi.audit import service as audit
from authapi.client_address import Requester
from authapi.config import Settings
from authapi.errors import AccountDisabled, Forbidden, NotFound, OwnAccountChange
from authapi.mail.tokens import MailTokenKey, Purpose
from authapi.ratelimit.service import RateLimiter
from authapi.sessions import service as sessions
from authapi.sessions.models import RevokeReason
from authapi.users.emails import fragment_spellings
from authapi.users.models import User


async def list_users(
    db: AsyncSession,
    *,
    limit: int,
    after: str | None = None,
    email: str | None = None,
    role: str | None = None,
    is_active: bool | None = None,
    mfa_enabled: bool | None = None,
) -> list[User]:
    """Ordered by email (unique, never changed, indexed): pass the last email seen as
    `after` for the next page. `email` is a substring of the stored (normalised,
    lowercase, Unicode-domain) address, in either spelling of a domain's labels; LIKE's
    wildcards in it match themselves."""
    query = select(User).order_by(User.email).limit(limit)
    if after is not None:
        query = query.where(User.email > after)
    if email:
        spellings = fragment_spellings(email)
        query = query.where(
            or_(*(User.email.contains(spelling, autoescape=True) for spelling in spellings))
        )
    if role is not None:
        query = query.where(User.role == role)
    if is_active is not None:
        query = query.where(User.is_active == is_active)
    if mfa_enabled is not None:
        query = query.where(User.mfa_enabled == mfa_enabled)
    return list(await db.scalars(query))


async def _target(db: AsyncSession, user_id: uuid.UUID) -> User:
    # Locked (on PostgreSQL) so two admins changing one account do so one after the other.
    user = await db.get(User, user_id, with_for_update=True, populate_existing=True)
    if user is None:
        raise NotFound("No such user.")
    return user


async def _lock_actor_and_target(db: AsyncSession, actor_id: uuid.UUID, user_id: uuid.UUID) -> User:
    """Lock the acting admin's row and the target's, in id order, and check that the actor
    is still an active admin now that nobody else can change them.

    Without this, two admins demoting each other at the same moment both pass the role
    check (made before either change) and leave no admin at all. Locked in one order,
    the second waits for the first, then finds its actor demoted and is refused. So every
    committed change was made by an admin whom no concurrent change could demote, and the
    last one to commit leaves at least that admin. (SQLite runs such transactions one
    after another anyway; `FOR UPDATE` is a no-op there.)"""
    rows = await db.scalars(
        select(User)
        .where(User.id.in_({actor_id, user_id}))
        .order_by(User.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    by_id = {row.id: row for row in rows}
    actor = by_id.get(actor_id)
    if actor is None or actor.role != "admin" or not actor.is_active:
        raise Forbidden()
    target = by_id.get(user_id)
    if target is None:
        raise NotFound("No such user.")
    return target


async def change_account(
    db: AsyncSession,
    *,
    actor_id: uuid.UUID,
    user_id: uuid.UUID,
    role: str | None,
    is_active: bool | None,
    now: datetime,
    requester: Requester,
) -> User:
    """An admin sets a user's role and whether they may log in. Only real changes count:
    one that is already so is a no-op. Disabling or a new role ends every session of the
    user (their access tokens carry the old role); an admin cannot do either to their
    own account."""
    user = await _lock_actor_and_target(db, actor_id, user_id)
    new_role = role if role is not None and role != user.role else None
    new_active = is_active if is_active is not None and is_active != user.is_active else None
    if new_role is None and new_active is None:
        return user
    if user.id == actor_id:
        raise OwnAccountChange()
    changes: list[str] = []
    if new_role is not None:
        user.role = new_role
        changes.append(f"role={new_role}")
    if new_active is not None:
        user.is_active = new_active
        changes.append("enabled" if new_active else "disabled")
    await db.flush()
    if new_active is False:
        await sessions.revoke_all(db, user.id, RevokeReason.USER_DISABLED, now)
    elif new_role is not None:
        await sessions.revoke_all(db, user.id, RevokeReason.ROLE_CHANGED, now)
    _record(db, ",".join(changes), actor_id=actor_id, user_id=user.id, now=now, requester=requester)
    return user


async def end_sessions(
    db: AsyncSession,
    *,
    actor_id: uuid.UUID,
    user_id: uuid.UUID,
    now: datetime,
    requester: Requester,
) -> None:
    """An admin ends every session of a user."""
    user = await _target(db, user_id)
    await sessions.revoke_all(db, user.id, RevokeReason.ENDED_BY_ADMIN, now)
    _record(db, "sessions_ended", actor_id=actor_id, user_id=user.id, now=now, requester=requester)


async def mail_password_reset(
    db: AsyncSession,
    key: MailTokenKey,
    settings: Settings,
    limiter: RateLimiter,
    *,
    actor_id: uuid.UUID,
    user_id: uuid.UUID,
    now: datetime,
    requester: Requester,
) -> None:
    """An admin has a reset link mailed to a user, who then chooses the password: the
    admin never sees or sets one. The user's sessions go on until the link is used."""
    user = await _target(db, user_id)
    if not user.is_active:
        raise AccountDisabled()
    await limiter.check_recipient(user.email)
    await mails.send_link(db, key, settings, user, Purpose.PASSWORD_RESET, now)
    _record(
        db,
        "password_reset_mailed",
        actor_id=actor_id,
        user_id=user.id,
        now=now,
        requester=requester,
    )


def _record(
    db: AsyncSession,
    what: str,
    *,
    actor_id: uuid.UUID,
    user_id: uuid.UUID,
    now: datetime,
    requester: Requester,
) -> None:
    # The trail has no actor column: the admin's id goes in the detail.
    audit.record(
        db,
        audit.Event.ADMIN_ACTION,
        at=now,
        requester=requester,
        user_id=user_id,
        detail=f"{what} by={actor_id}",
    )
