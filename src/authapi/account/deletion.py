"""Deleting one's own account (DELETE /users/me).

What goes: the users row (the address, the password hash), its sessions and mail
tokens (both by ON DELETE CASCADE, on PostgreSQL and on SQLite, whose connections turn
foreign keys on: db.py), and the outbox's mails to the address and to an address a
pending change would have moved to, sent or not: their links died with the tokens, and
a recipient is personal data. What stays: the audit trail, which names the account by
its id only, with an `account_deleted` event; and one mail, queued in the same
transaction, telling the address that its account is gone.

The sessions are revoked before the row goes, so that the revocation is published
(revocations/publish.py): this instance learns it at the commit, the others through
PostgreSQL NOTIFY at that same commit. The feed's poll, the safety net (and on SQLite
the only way between worker processes), reads `sessions.revoked_at`, which the cascade
deletes: so the revocations of the account's sessions from the last access-token
lifetime are copied to `deleted_sessions` first, where the poll reads them too.

The last active admin cannot delete their account (LastAdmin): nobody could then
promote anyone, short of the `authapi create-user --role admin` command line.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from authapi.account import mails
from authapi.audit import service as audit
from authapi.client_address import Requester
from authapi.config import Settings
from authapi.errors import InvalidToken, LastAdmin
from authapi.mail.messages import MailTemplate
from authapi.mail.models import MailToken, OutboxMail
from authapi.mail.tokens import Purpose
from authapi.revocations.registry import CLOCK_SKEW_MARGIN
from authapi.sessions import service as sessions
from authapi.sessions.models import RevokeReason
from authapi.users.models import User

if TYPE_CHECKING:  # at run time it would import this module back
    from authapi.mfa.step_up import StepUp


async def _lock_with_admins(db: AsyncSession, user_id: uuid.UUID) -> list[User]:
    """The user's row and every active admin's, locked (on PostgreSQL) in id order, the
    order users/admin_service.py locks in too: two admins deleting themselves at once
    follow one another, and the second sees that the first is gone."""
    rows = await db.scalars(
        select(User)
        .where(or_(User.id == user_id, (User.role == "admin") & User.is_active.is_(True)))
        .order_by(User.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list(rows)


async def delete_account(
    db: AsyncSession,
    settings: Settings,
    user: User,
    *,
    proof: StepUp,
    session_id: uuid.UUID,
    now: datetime,
    requester: Requester,
) -> None:
    """After the current password, delete the account and end every session of it."""
    await proof.check(db, user, now=now, requester=requester)
    locked = await _lock_with_admins(db, user.id)
    me = next((row for row in locked if row.id == user.id), None)
    if me is None or not me.is_active:
        raise InvalidToken()  # deleted (a concurrent request) or disabled meanwhile
    if me.role == "admin" and not any(row.id != me.id and row.role == "admin" for row in locked):
        raise LastAdmin()
    pending = await db.scalars(
        select(MailToken.new_email).where(
            MailToken.user_id == me.id,
            MailToken.purpose == Purpose.EMAIL_CHANGE.value,
            MailToken.new_email.is_not(None),
        )
    )
    recipients = {me.email, *(email for email in pending if email is not None)}
    await sessions.revoke_all(db, me.id, RevokeReason.ACCOUNT_DELETED, now)
    window = timedelta(seconds=settings.access_token_ttl + CLOCK_SKEW_MARGIN)
    await sessions.keep_revocations(db, me.id, since=now - window)
    await db.execute(
        delete(OutboxMail)
        .where(OutboxMail.recipient.in_(recipients))
        .execution_options(synchronize_session=False)
    )
    await db.execute(
        delete(User).where(User.id == me.id).execution_options(synchronize_session=False)
    )
    db.expunge(me)
    await mails.send(db, settings, MailTemplate.ACCOUNT_DELETED, me.email, now)
    audit.record(
        db,
        audit.Event.ACCOUNT_DELETED,
        at=now,
        requester=requester,
        user_id=me.id,
        session_id=session_id,
    )
