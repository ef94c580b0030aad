from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict

# RFC 3339, as the contract writes instants (and as OpenAPI's `date-time` says): pydantic
# alone would also take a number as a Unix time (`until=0.5`).
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(value: object) -> object:
    if isinstance(value, str) and not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time, such as 2024-05-01T12:00:00Z")
    return value


def _in_utc(value: datetime) -> datetime:
    """The instant in UTC. RFC 3339 can write instants outside the years 1-9999 that a
    datetime (and so the database drivers) can hold, such as 9999-12-31T23:59:59-23:59;
    those become the nearest instant that can be held, which selects the same events."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        latest = value.year == datetime.max.year
        return (datetime.max if latest else datetime.min).replace(tzinfo=UTC)


Instant = Annotated[AwareDatetime, BeforeValidator(_rfc3339), AfterValidator(_in_utc)]
# Event ids are 64-bit integers (BIGINT on PostgreSQL, INTEGER on SQLite): a larger
# cursor is no id at all, and the drivers could not even send it.
MAX_EVENT_ID = 2**63 - 1


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
