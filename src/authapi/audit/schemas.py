from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    event: str
    user_id: uuid.UUID | None
    session_id: uuid.UUID | None
    ip: str | None
    user_agent: str | None
    detail: str | None


class AuditPage(BaseModel):
    items: list[AuditEventOut]
    # Pass as `before` to get the next (older) page; null on the last page.
    next_before: int | None
