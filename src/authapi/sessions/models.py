from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from authapi.db import Base, UTCDateTime


class RevokeReason(enum.StrEnum):
    """Why a session ended: `LoginSession.revoked_reason`, and the label of the
    revocations metric."""

    LOGOUT = "logout"
    REVOKED = "revoked"  # RFC 7009 /revoke
    SESSION_DELETED = "session_deleted"
    LOGOUT_EVERYWHERE = "logout_everywhere"
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - a reason, not a password
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a reason, not a password
    REFRESH_TOKEN_REUSED = "refresh_token_reused"  # noqa: S105
    ENDED_BY_ADMIN = "ended_by_admin"
    USER_DISABLED = "user_disabled"
    ROLE_CHANGED = "role_changed"
    EMAIL_CHANGED = "email_changed"  # the change confirmed (account/email_change.py)
    ACCOUNT_DELETED = "account_deleted"
    SECOND_FACTORS_OFF = "second_factors_off"  # the last second factor removed


class LoginSession(Base):
    """One login on one device; its refresh token is derived from `id` and `generation`."""

    __tablename__ = "sessions"
    __table_args__ = (
        # For each instance's poll of recent revocations (revocations/feed.py). Partial:
        # the many sessions never revoked take no room in it.
        Index(
            "ix_sessions_revoked_at",
            "revoked_at",
            postgresql_where=text("revoked_at IS NOT NULL"),
            sqlite_where=text("revoked_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # Bumped by every rotation; only the token of the current generation rotates.
    generation: Mapped[int] = mapped_column(BigInteger, default=0)
    scope: Mapped[str] = mapped_column(String(1024))
    # How the login behind the session was made (RFC 8176 methods, space-separated):
    # every access token of the session carries it as `amr`.
    amr: Mapped[str] = mapped_column(String(64), server_default="pwd")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the session ends: the earlier of the idle deadline (moved by each refresh)
    # and `absolute_expires_at`; set to the revocation time on revocation. One column,
    # so one index serves both the validity check and `authapi prune`.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    absolute_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(32))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    ip: Mapped[str | None] = mapped_column(String(64))

    def is_active(self, now: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now


class DeletedSession(Base):
    """A session that had been revoked when its account was deleted (the cascade took
    its row), kept one access-token lifetime: the revocation feed's poll, which reads
    `sessions.revoked_at`, reads these too, so no instance misses the revocation
    (revocations/feed.py). No foreign key: the account is gone."""

    __tablename__ = "deleted_sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
