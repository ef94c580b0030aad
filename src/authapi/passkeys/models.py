"""The tables of passkeys: the registered credentials (public keys only) and the
ceremonies' challenges, kept server-side until their single use."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from authapi.db import Base, UTCDateTime


class Passkey(Base):
    """A WebAuthn credential registered by a user."""

    __tablename__ = "passkeys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # WebAuthn caps a credential id at 1023 bytes; unique across all users.
    credential_id: Mapped[bytes] = mapped_column(LargeBinary(1023), unique=True)
    # The COSE public key: all the server needs to check an assertion.
    public_key: Mapped[bytes] = mapped_column(LargeBinary(1024))
    # The authenticator's signature counter; one that goes backwards is refused.
    sign_count: Mapped[int] = mapped_column(BigInteger)
    # Backup eligible (a synced passkey, RFC 8176 "swk"), else bound to one device ("hwk").
    backup_eligible: Mapped[bool] = mapped_column(Boolean)
    transports: Mapped[str | None] = mapped_column(String(255))  # space-separated
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PasskeyChallenge(Base):
    """A ceremony's challenge, from its options until its single use or expiry. Found
    again by the challenge the authenticator signed (in `clientDataJSON`)."""

    __tablename__ = "passkey_challenges"

    challenge: Mapped[bytes] = mapped_column(LargeBinary(64), primary_key=True)
    # "registration", "login" (passwordless) or "second_factor".
    purpose: Mapped[str] = mapped_column(String(16))
    # Whose ceremony: none for a passwordless login, which names no user.
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
