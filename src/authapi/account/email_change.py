"""Changing the address: the request mails a link to the new address (and a notice to
the old one) and changes nothing; the link's token, posted to /email/verify, makes the
change.

The change ends every session of the user, the one that asked included: the link may
be opened on another device, with no session to name, and whoever changes the address
of an account they took over must not keep the owner's sessions either. It also voids
every other mailed link of the account (a password-reset link sent to the old address
must not outlive the address).

The login throttle is keyed by the address (ratelimit/service.py): after a change the
new address starts with fresh counters. That opens no way around them: moving the
counters takes the current password, which is what the throttle protects, and the new
address's mailbox; guesses at the old address keep counting as guesses at an unknown
account.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from authapi.account import mails
from authapi.audit import service as audit
from authapi.client_address import Requester
from authapi.config import Settings
from authapi.errors import EmailTaken, InvalidRequest, InvalidToken
from authapi.mail import tokens
from authapi.mail.messages import MailTemplate, expires_in
from authapi.mail.models import MailToken
from authapi.mail.tokens import ConsumedToken, MailTokenKey, Purpose
from authapi.ratelimit.service import RateLimiter
from authapi.sessions import service as sessions
from authapi.sessions.models import RevokeReason
from authapi.users.models import User

if TYPE_CHECKING:  # at run time it would import this module back
    from authapi.mfa.step_up import StepUp


async def _taken(db: AsyncSession, email: str) -> bool:
    return await db.scalar(select(User.id).where(User.email == email)) is not None


async def request_change(
    db: AsyncSession,
    limiter: RateLimiter,
    key: MailTokenKey,
    settings: Settings,
    user: User,
    *,
    new_email: str,
    proof: StepUp,
    session_id: uuid.UUID,
    now: datetime,
    requester: Requester,
) -> None:
    """POST /users/me/email, `new_email` normalised: after the current password, mail
    the confirmation link to the new address and the notice to the old one. An earlier
    change's link stops working."""
    if new_email == user.email:
        # Nothing to confirm. Said before the password is asked: the caller knows it.
        raise InvalidRequest("The new address is the current one.")
    await proof.check(db, user, now=now, requester=requester)
    # Locked (on PostgreSQL) and read again: concurrent requests of one user follow one
    # another, so exactly the last one's link stays valid, and bound to today's address.
    locked = await db.get(User, user.id, with_for_update=True, populate_existing=True)
    if locked is None or not locked.is_active:
        raise InvalidToken()  # deleted or disabled meanwhile: as its next request would be
    if await _taken(db, new_email):
        raise EmailTaken()
    await limiter.check_recipient(new_email)
    token = await tokens.issue(
        db, locked, Purpose.EMAIL_CHANGE, key=key, settings=settings, now=now, new_email=new_email
    )
    await mails.send(
        db,
        settings,
        MailTemplate.CONFIRM_EMAIL_CHANGE,
        new_email,
        now,
        link=mails.link(settings, mails.VERIFY_EMAIL_PATH, token),
        expires_in=expires_in(settings.email_verification_ttl),
        new_email=new_email,
    )
    # The owner's alarm, should someone else have their password: never skipped, and
    # not counted against the old address's budget (a refusal would silence it).
    await mails.send(
        db, settings, MailTemplate.EMAIL_CHANGED, locked.email, now, new_email=new_email
    )
    audit.record(
        db,
        audit.Event.EMAIL_CHANGE_REQUESTED,
        at=now,
        requester=requester,
        user_id=locked.id,
        session_id=session_id,
    )


async def apply(
    db: AsyncSession, consumed: ConsumedToken, *, now: datetime, requester: Requester
) -> User:
    """The change's token was posted to /email/verify (and used up): the address is
    the new one, and verified. EmailTaken if an account has taken it since the request;
    then the caller's transaction must roll back, and the token lives on."""
    user, new_email = consumed.user, consumed.new_email
    if new_email is None:
        raise ValueError("an email-change token without its new address")
    if await _taken(db, new_email):
        raise EmailTaken()
    try:
        # A sign-up with the address between the check and here meets the unique index.
        async with db.begin_nested():
            user.email = new_email
            user.email_verified = True
            await db.flush()
    except IntegrityError:
        raise EmailTaken() from None
    # The account's other links, whatever their purpose, went to the old address.
    await db.execute(delete(MailToken).where(MailToken.user_id == user.id))
    await sessions.revoke_all(db, user.id, RevokeReason.EMAIL_CHANGED, now)
    audit.record(db, audit.Event.EMAIL_CHANGED, at=now, requester=requester, user_id=user.id)
    return user
