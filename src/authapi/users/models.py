from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, String, Uuid, false
from sqlalchemy.orm import Mapped, mapped_column

from authapi.db import Base, UTCDateTime

ROLES = ("user", "admin")


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # Stored normalised (see users/emails.py), so the unique index is the duplicate check.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="user")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # True once the owner of the address opened a link mailed to it (account/).
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # True while the user has a second factor (TOTP on, or a passkey): their password
    # alone logs nobody in. Kept by mfa/factors.py, in the transaction that changes one.
    mfa_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
