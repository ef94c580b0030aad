from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, Index, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from authapi.db import Base, UTCDateTime


class KeyState(enum.StrEnum):
    NEXT = "next"  # published, not signing yet
    CURRENT = "current"  # signing (exactly one)
    RETIRED = "retired"  # published until the tokens it signed have expired


class StoredSigningKey(Base):
    """A signing key; its private part only encrypted (signing/sealing.py)."""

    __tablename__ = "signing_keys"
    __table_args__ = (
        # At most one current and one next key; any number of retired ones.
        Index(
            "ix_signing_keys_state",
            "state",
            unique=True,
            postgresql_where=text("state <> 'retired'"),
            sqlite_where=text("state <> 'retired'"),
        ),
        CheckConstraint("state IN ('next', 'current', 'retired')", name="state"),
    )

    # The RFC 7638 thumbprint, or the kid a JWK file named: unique by construction, and
    # what every lookup is by.
    kid: Mapped[str] = mapped_column(String(255), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(8))
    public_key: Mapped[str] = mapped_column(Text)  # PEM, SubjectPublicKeyInfo
    # version | nonce | AES-256-GCM(PKCS#8 DER), the kid as associated data. NULL for a
    # public key only ever published (an old key from AUTHAPI_SIGNING_KEY_FILES).
    sealed_private_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)  # published from then on
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # began to sign
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # stopped signing
