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
from authapi.mfa.models import MfaToken
from authapi.sessions import service as sessions
from authapi.sessions.models import RevokeReason
from authapi.users.models import User


async def all_factors_off(
    db: AsyncSession,
    settings: Settings,
    user: User,
    *,
    keep_session: uuid.UUID | None,
    removed_by: str | None,
    now: datetime,
    requester: Requester,
) -> int:
    """The user has no second factor left: the recovery codes go too, and any login
    halfway through its second factor; every session but `keep_session` (the one that
    turned the last factor off; None when an admin, `removed_by` their id, or the
    operator's CLI removed them) ends, and the change is audited and mailed to the
    account. Returns how many sessions ended."""
    await recovery_codes.delete_all(db, user.id)
    await db.execute(delete(MfaToken).where(MfaToken.user_id == user.id))
    await factors.refresh_flag(db, user.id)
    ended = await sessions.revoke_all(
        db, user.id, RevokeReason.SECOND_FACTORS_OFF, now, keep=keep_session
    )
    audit.record(
        db,
        audit.Event.SECOND_FACTORS_OFF,
        at=now,
        requester=requester,
        user_id=user.id,
        detail=f"by={removed_by}" if removed_by else None,
    )
    await mails.send(
        db,
        settings,
        MailTemplate.SECOND_FACTORS_OFF,
        user.email,
        now,
        by_whom="an administrator" if removed_by else "you",
    )
    return ended
