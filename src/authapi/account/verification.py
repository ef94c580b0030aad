"""Verifying an address: the mail at sign-up or on request, and the link's token."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from authapi.account import email_change, mails
from authapi.audit import service as audit
from authapi.client_address import Requester
from authapi.config import Settings
from authapi.mail import tokens
from authapi.mail.tokens import MailTokenKey, Purpose
from authapi.ratelimit.service import RateLimiter
from authapi.users.models import User


async def request_link(
    db: AsyncSession,
    key: MailTokenKey,
    settings: Settings,
    limiter: RateLimiter,
    user: User,
    *,
    now: datetime,
    requester: Requester,
) -> None:
    """POST /email/verification: mail the link again, unless the address is verified
    already (then there is nothing to do, and nothing is sent)."""
    if user.email_verified:
        return
    await limiter.check_recipient(user.email)
    await mails.send_link(db, key, settings, user, Purpose.EMAIL_VERIFICATION, now)
    audit.record(
        db, audit.Event.EMAIL_VERIFICATION_REQUESTED, at=now, requester=requester, user_id=user.id
    )


def mark_verified(db: AsyncSession, user: User, *, now: datetime, requester: Requester) -> None:
    """The owner of the address has shown it, by a link mailed there."""
    user.email_verified = True
    audit.record(db, audit.Event.EMAIL_VERIFIED, at=now, requester=requester, user_id=user.id)


async def confirm(
    db: AsyncSession, key: MailTokenKey, token: str, *, now: datetime, requester: Requester
) -> User:
    """POST /email/verify: use the link's token up and mark the address verified, or,
    for the link of an email change, make the change (account/email_change.py)."""
    consumed = await tokens.consume(
        db, token, (Purpose.EMAIL_VERIFICATION, Purpose.EMAIL_CHANGE), key=key, now=now
    )
    if consumed.purpose is Purpose.EMAIL_CHANGE:
        return await email_change.apply(db, consumed, now=now, requester=requester)
    mark_verified(db, consumed.user, now=now, requester=requester)
    return consumed.user
