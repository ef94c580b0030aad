"""What happens when a user's last second factor goes: their password alone logs in
again, so whoever removed it must be the only one still signed in."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from authapi.account import mails
from authapi.audit import service as audit
from authapi.client_address import Requester
from authapi.config import Settings
from authapi.mail.messages import MailTemplate
from authapi.mfa import factors, recovery_codes
from authapi.mfa.models import TotpFactor
from authapi.passkeys.models import Passkey
from authapi.sessions import service as sessions
from authapi.sessions.models import RevokeReason
from authapi.users.models import User


async def remove_every_factor(db: AsyncSession, user_id: uuid.UUID) -> None:
    """TOTP, recovery codes and passkeys, all gone (an admin's removal, `authapi mfa
    reset`); `all_factors_off` then does the rest."""
    await db.execute(delete(TotpFactor).where(TotpFactor.user_id == user_id))
    await db.execute(delete(Passkey).where(Passkey.user_id == user_id))
    await recovery_codes.delete_all(db, user_id)


async def all_factors_off(
    db: AsyncSession,
    settings: Settings,
    user: User,
    *,
    keep_session: uuid.UUID | None,
    by_admin: bool,
    now: datetime,
    requester: Requester,
) -> None:
    """The user has no second factor left: the recovery codes go too, every session
    but `keep_session` (the one that turned the last factor off; None for an admin's
    removal) ends, and the change is audited and mailed to the account."""
    await recovery_codes.delete_all(db, user.id)
    await factors.refresh_flag(db, user.id)
    await sessions.revoke_all(db, user.id, RevokeReason.SECOND_FACTORS_OFF, now, keep=keep_session)
    audit.record(
        db,
        audit.Event.SECOND_FACTORS_OFF,
        at=now,
        requester=requester,
        user_id=user.id,
        detail="by_admin" if by_admin else None,
    )
    await mails.send(
        db,
        settings,
        MailTemplate.SECOND_FACTORS_OFF,
        user.email,
        now,
        by_whom="an administrator" if by_admin else "you",
    )
