"""The outbox of mails to send, and the mail tokens (only their keyed hashes)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from authapi.db import Base, UTCDateTime


class MailState(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class OutboxMail(Base):
    """A mail, inserted in the transaction of the change that causes it and sent later
    by a sender (mail/sender.py). `due_at` is when it may next be tried: a sender that
    claims it moves `due_at` a lease ahead, so that no other sender takes it meanwhile
    and, should the claimer die mid-send, it is tried again when the lease runs out."""

    __tablename__ = "mail_outbox"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    recipient: Mapped[str] = mapped_column(String(320))
    # The whole message as sent (RFC 5322 text); emptied once sent, since it may hold a
    # link with a token.
    message: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(8), default=MailState.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Why the last attempt failed (the relay's answer, never the message).
    last_error: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (Index("ix_mail_outbox_state_due_at", "state", "due_at"),)


class MailToken(Base):
    """A token mailed in a link: `token_hash` is its HMAC, never the token itself;
    `fingerprint` is an HMAC of the account state it is bound to (the password hash,
    or the email address), so that a change by any other means voids it."""

    __tablename__ = "mail_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary(32))
    # The address an email change is to (its link goes there); None for other purposes.
    new_email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
