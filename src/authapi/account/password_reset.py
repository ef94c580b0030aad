"""Resetting a forgotten password: the mail with the link, and the link's token.

POST /password/forgot answers the same, in about the same time, whether or not an
account has the address: both look the address up, count it against the recipient
limit and write an audit row; only a known, active account also gets a token and a
mail (a few more statements in the same transaction, and no password hashing on
either path). POST /password/reset checks the token before hashing the new password,
so a made-up token costs one lookup and never a hash.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from authapi.account import mails, verification
from authapi.audit import service as audit
from authapi.client_address import Requester
from authapi.config import Settings
from authapi.db import end_read_only_transaction
from authapi.errors import InvalidMailToken
from authapi.expiring import ExpiringCache
from authapi.mail import tokens
from authapi.mail.messages import MailTemplate
from authapi.mail.tokens import MailTokenKey, Purpose
from authapi.ratelimit.service import RateLimiter
from authapi.sessions import service as sessions
from authapi.sessions.models import RevokeReason
from authapi.users.models import User
from authapi.users.passwords import PasswordHasher
from authapi.users.schemas import UserOut
from authapi.users.service import forget_profiles


async def request_reset(
    db: AsyncSession,
    key: MailTokenKey,
    settings: Settings,
    limiter: RateLimiter,
    *,
    email: str,
    now: datetime,
    requester: Requester,
) -> None:
    """POST /password/forgot, for a normalised `email`: mail a reset link if an active
    account has the address; otherwise do the same lookup, counting and recording, and
    send nothing."""
    # Counted for every address, so that a 429 tells nothing about who has an account.
    await limiter.check_recipient(email)
    user = await db.scalar(select(User).where(User.email == email))
    if user is not None and user.is_active:
        await mails.send_link(db, key, settings, user, Purpose.PASSWORD_RESET, now)
    audit.record(
        db,
        audit.Event.PASSWORD_RESET_REQUESTED,
        at=now,
        requester=requester,
        user_id=user.id if user else None,
    )


async def reset(
    db: AsyncSession,
    hasher: PasswordHasher,
    key: MailTokenKey,
    settings: Settings,
    profiles: ExpiringCache[str, UserOut],
    *,
    token: str,
    new_password: str,
    now: datetime,
    requester: Requester,
) -> None:
    """POST /password/reset: use the link's token up and set the new password. The
    address counts as verified (the link was mailed there), every session of the user
    ends, and a notice is mailed. InvalidMailToken for a bad, used, expired or voided
    token, or one of a disabled account."""
    # Looked at first, read only: the hash is only worked out for a token that is
    # valid now, and no connection is held while it is.
    if not (await tokens.holder(db, token, Purpose.PASSWORD_RESET, key=key, now=now)).is_active:
        raise InvalidMailToken
    await end_read_only_transaction(db)
    async with hasher.slot():
        password_hash = await hasher.hash(new_password)
    # The single use: of concurrent requests with one token, one deletes its row and
    # the others are refused; a password changed meanwhile voids it too.
    user = (await tokens.consume(db, token, Purpose.PASSWORD_RESET, key=key, now=now)).user
    if not user.is_active:
        raise InvalidMailToken  # disabled meanwhile; the token stays used up
    user.password_hash = password_hash
    if not user.email_verified:
        verification.mark_verified(db, user, now=now, requester=requester)
    await db.flush()
    # Whoever knew the old password (perhaps the reason for the reset) is signed out.
    await sessions.revoke_all(db, user.id, RevokeReason.PASSWORD_RESET, now)
    await mails.send(db, settings, MailTemplate.PASSWORD_CHANGED, user.email, now)
    audit.record(db, audit.Event.PASSWORD_RESET, at=now, requester=requester, user_id=user.id)
    forget_profiles(db, profiles, user.id)
