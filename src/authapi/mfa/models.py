"""The tables of the code factors: a user's TOTP secret (sealed), recovery codes (only
their keyed hashes), and the `mfa_token`s of logins waiting for their second factor."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from authapi.db import Base, UTCDateTime


class TotpFactor(Base):
    """A user's TOTP authenticator: one per user. Enrolment writes the row with
    `enabled_at` unset; the first valid code sets it."""

    __tablename__ = "totp_factors"

    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    # The RFC 6238 secret sealed under the key-encryption key: a database dump alone
    # does not give it.
    sealed_secret: Mapped[bytes] = mapped_column(LargeBinary(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The time step (Unix time // 30) of the last accepted code: a code, even a right
    # one, is refused for this step and any before it, so an overheard code is spent.
    last_used_step: Mapped[int | None] = mapped_column(BigInteger)
    # Wrong codes in a row (NIST SP 800-63B §5.2.2 caps them): reset by a right one.
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class RecoveryCode(Base):
    """One recovery code of a user's current set, by its keyed hash; spent once used."""

    __tablename__ = "recovery_codes"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MfaToken(Base):
    """A login whose password was right and whose second factor is still to come: the
    `mfa_token` of the contract, by its keyed hash. Single use, short-lived, and it
    dies after a few wrong codes (`attempts` is counted before a code is checked)."""

    __tablename__ = "mfa_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    scope: Mapped[str] = mapped_column(String(1024))
    # The methods of the first factor (RFC 8176, space-separated): "pwd".
    amr: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
