"""Putting mail in the outbox, in the caller's transaction: a mail exists exactly when
the change that causes it commits, and no request waits for a relay (mail/sender.py
sends it)."""

from __future__ import annotations

import uuid
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from authapi import metrics
from authapi.db import delete_batch
from authapi.mail.models import MailState, OutboxMail


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
    return mail


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
