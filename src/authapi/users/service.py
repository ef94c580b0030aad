"""Users: registration, credential checks, password changes, the caller's profile."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authapi.access_tokens.service import Caller
from authapi.account import mails
from authapi.audit import service as audit
from authapi.client_address import Requester
from authapi.config import Settings
from authapi.db import after_commit, end_read_only_transaction, transaction
from authapi.errors import EmailTaken, InvalidToken, LoginFailed
from authapi.expiring import ExpiringCache
from authapi.mail.messages import MailTemplate
from authapi.mail.tokens import MailTokenKey, Purpose
from authapi.sessions import service as sessions
from authapi.sessions.models import RevokeReason
from authapi.users.emails import normalize_email
from authapi.users.models import User
from authapi.users.passwords import PasswordHasher
from authapi.users.schemas import UserOut

if TYPE_CHECKING:  # at run time it would import this module back
    from authapi.mfa.step_up import StepUp


async def create_user(
    db: AsyncSession,
    hasher: PasswordHasher,
    *,
    email: str,
    password: str,
    now: datetime,
    role: str = "user",
    email_verified: bool = False,
) -> User:
    """Create a user; `email` must already be normalised (the schema does it)."""
    await end_read_only_transaction(db)
    async with hasher.slot():
        password_hash = await hasher.hash(password)
    user = User(
        id=uuid.uuid4(),
        email=email,
        password_hash=password_hash,
        role=role,
        is_active=True,
        email_verified=email_verified,
        created_at=now,
    )
    try:
        # Added inside a savepoint, so a duplicate leaves the caller's transaction usable.
        async with db.begin_nested():
            db.add(user)
            await db.flush()
    except IntegrityError:
        raise EmailTaken() from None
    return user


async def register(
    db: AsyncSession,
    hasher: PasswordHasher,
    mail_tokens: MailTokenKey,
    settings: Settings,
    *,
    email: str,
    password: str,
    now: datetime,
    requester: Requester,
) -> User:
    """Registration: a new account with the role "user", in the audit trail, and a
    mail to its address with the link that verifies it."""
    user = await create_user(db, hasher, email=email, password=password, now=now)
    audit.record(db, audit.Event.USER_REGISTERED, at=now, requester=requester, user_id=user.id)
    await mails.send_link(db, mail_tokens, settings, user, Purpose.EMAIL_VERIFICATION, now)
    return user


async def get_user(db: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await db.get(User, user_id)


async def id_for_email(db: AsyncSession, email: str) -> uuid.UUID | None:
    return await db.scalar(select(User.id).where(User.email == email))


def login_name(username: str) -> str:
    """The account a login names: the normalised email, or the lowercased input when it
    is not an email address (no account has it, but it is throttled all the same)."""
    try:
        return normalize_email(username)
    except ValueError:
        return username.strip().lower()


async def authenticate(
    db: AsyncSession, hasher: PasswordHasher, *, email: str, password: str
) -> User:
    """The password grant's check, for a `login_name`. Every failure is the same
    InvalidGrant, reached after one hash verification, so neither the answer nor its
    timing tells which part failed."""
    async with hasher.slot():
        user = await db.scalar(select(User).where(User.email == email))
        await end_read_only_transaction(db)
        matches, new_hash = await hasher.verify(password, user.password_hash if user else None)
    if user is None or not matches or not user.is_active:
        raise LoginFailed(user.id if user else None)
    if new_hash is not None:
        user.password_hash = new_hash
        await db.flush()
    return user


async def active_user(db: AsyncSession, caller: Caller) -> User:
    """The caller's account, from the database; InvalidToken once it is gone or
    disabled (its sessions have ended then, but its access token may not have)."""
    user = await get_user(db, caller.user_id)
    if user is None or not user.is_active:
        raise InvalidToken()
    return user


async def profile(
    maker: async_sessionmaker[AsyncSession],
    profiles: ExpiringCache[str, UserOut],
    caller: Caller,
    *,
    ttl: float,
) -> UserOut:
    """The caller's profile. Read from the database once per session and access-token
    lifetime (`ttl`), then answered from `profiles`. A change to what it shows either
    ends the user's sessions, whose tokens are then refused before this runs (the role,
    whether the account is active), or keeps them and calls `forget_profiles` (the
    address, whether it is verified): then another instance may show the old state
    until its copy expires, within `ttl`."""
    now = time.time()
    key = str(caller.session_id)
    cached = profiles.get(key, now)
    if cached is not None:
        return cached
    # Its own transaction, only when needed: a hit opens no session at all.
    async with transaction(maker) as db:
        found = UserOut.model_validate(await active_user(db, caller))
    profiles.put(key, found, now + ttl, now)
    return found


def forget_profiles(
    db: AsyncSession, profiles: ExpiringCache[str, UserOut], user_id: uuid.UUID
) -> None:
    """Once `db` commits, drop this instance's cached profiles of the user (after the
    commit: a read in between would cache the old state again)."""
    after_commit(db, lambda: profiles.discard_if(lambda cached: cached.id == user_id))


async def change_password(
    db: AsyncSession,
    hasher: PasswordHasher,
    settings: Settings,
    user: User,
    *,
    proof: StepUp,
    new: str,
    session_id: uuid.UUID,
    now: datetime,
    requester: Requester,
) -> None:
    """Change a user's password from their session `session_id`: the current password
    asked again (account/current_password.py: throttled like a login), every other
    session of the user ended, the change recorded and a notice mailed."""
    await proof.check(db, user, now=now, requester=requester)
    async with hasher.slot():
        new_hash = await hasher.hash(new)
    user.password_hash = new_hash
    await db.flush()
    await sessions.revoke_all(db, user.id, RevokeReason.PASSWORD_CHANGED, now, keep=session_id)
    # If it was not the owner, the owner learns of it (and can reset the password).
    await mails.send(db, settings, MailTemplate.PASSWORD_CHANGED, user.email, now)
    audit.record(
        db,
        audit.Event.PASSWORD_CHANGED,
        at=now,
        requester=requester,
        user_id=user.id,
        session_id=session_id,
    )
