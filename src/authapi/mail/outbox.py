"""Putting mail in the outbox, in the caller's transaction: a mail exists exactly when
the change that causes it commits, and no request waits for a relay (mail/sender.py
sends it)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from authapi import metrics
from authapi.db import delete_batch
from authapi.mail.models import MailState, OutboxMail

_QUEUED = "authapi.mail_queued"


async def enqueue(db: AsyncSession, message: EmailMessage, now: datetime) -> OutboxMail:
    """Add `message` to the outbox; it is sent once the caller's transaction commits.
    Never commits."""
    recipient = str(message["To"])
    mail = OutboxMail(
        id=uuid.uuid4(),
        recipient=recipient,
        message=message.as_string(policy=SMTP),
        state=MailState.PENDING.value,
        attempts=0,
        created_at=now,
        due_at=now,
    )
    db.add(mail)
    await db.flush()
    metrics.count_on_commit(db, metrics.MAIL_QUEUED)
    db.info[_QUEUED] = True
    return mail


def wake_on_commit(wake: Callable[[], None]) -> tuple[Any, Any]:
    """The `after_commit` and `after_transaction_end` listeners (app.session_class) that
    call `wake` (the sender's) once a transaction that queued mail commits, so that the
    mail leaves at once rather than at the sender's next poll."""

    def after_commit(session: Session) -> None:
        if session.info.pop(_QUEUED, False):
            wake()

    def after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:
            session.info.pop(_QUEUED, None)

    return after_commit, after_transaction_end


async def prune_sent_batch(db: AsyncSession, before: datetime, size: int) -> int:
    """Delete up to `size` mails sent before `before` (`authapi prune`)."""
    return await delete_batch(db, OutboxMail.sent_at, before, size)


async def prune_failed_batch(db: AsyncSession, before: datetime, size: int) -> int:
    """Delete up to `size` mails given up on and queued before `before`."""
    batch = (
        select(OutboxMail.id)
        .where(OutboxMail.state == MailState.FAILED.value, OutboxMail.created_at < before)
        .limit(size)
    )
    result: CursorResult[Any] = await db.execute(  # type: ignore[assignment]
        delete(OutboxMail)
        .where(OutboxMail.id.in_(batch.scalar_subquery()))
        .execution_options(synchronize_session=False)
    )
    return result.rowcount
