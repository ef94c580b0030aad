from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from authapi.db import Base, UTCDateTime

# The single row's key.
RECORD_ID = 1


class RecordedIssuer(Base):
    """The issuer of the instances that share this database (record.py)."""

    __tablename__ = "issuer"
    __table_args__ = (CheckConstraint(f"id = {RECORD_ID}", name="one_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    issuer: Mapped[str] = mapped_column(String(2048))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
