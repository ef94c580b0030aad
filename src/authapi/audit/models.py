from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from authapi.db import Base, UTCDateTime


class AuditEvent(Base):
    """One authentication event. Never holds a secret: no password, token or hash."""

    __tablename__ = "audit_events"
    # The admin's listings by user and by event are newest first by id: with the id
    # second in the index, a page is a range of it read backwards, not a sort of every
    # matching event (migration 0010).
    __table_args__ = (
        Index("ix_audit_events_user_id_id", "user_id", "id"),
        Index("ix_audit_events_event_id", "event", "id"),
    )

    # Sequential, for keyset pagination (SQLite only auto-increments an INTEGER key).
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    event: Mapped[str] = mapped_column(String(32))
    # No foreign keys: the trail outlives the users and sessions it mentions.
    user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    session_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    detail: Mapped[str | None] = mapped_column(String(128))
