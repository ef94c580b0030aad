"""Publishing revocations: to this instance once the revoking transaction commits,
and to every other instance through PostgreSQL NOTIFY, which the server delivers at
that same commit (and never, if it rolls back)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from authapi.revocations.registry import RevokedSessions

CHANNEL = "authapi_revocations"
# A notification carries at most 8000 bytes: 200 ids of 32 hex digits and a space.
IDS_PER_NOTIFICATION = 200
# Keys of Session.info: the app's registry (given to every session by the
# sessionmaker) and the revocations of the current transaction, not yet committed.
REGISTRY = "authapi.revoked_sessions"
_PENDING = "authapi.pending_revocations"


async def publish(db: AsyncSession, session_ids: Sequence[uuid.UUID], revoked_at: datetime) -> None:
    """Announce that these sessions were revoked in `db`'s current transaction."""
    if not session_ids:
        return
    db.info.setdefault(_PENDING, []).append((session_ids, revoked_at))
    if db.get_bind().dialect.name == "postgresql":
        for start in range(0, len(session_ids), IDS_PER_NOTIFICATION):
            chunk = session_ids[start : start + IDS_PER_NOTIFICATION]
            payload = " ".join(session_id.hex for session_id in chunk)
            await db.execute(select(func.pg_notify(CHANNEL, payload)))


def parse_notification(payload: str) -> Iterable[uuid.UUID]:
    """The session ids of a notification; anything malformed is skipped."""
    for word in payload.split():
        try:
            yield uuid.UUID(hex=word)
        except ValueError:
            continue


def apply_committed(session: Session) -> None:
    """`after_commit` of the app's sessions (app.py): this instance refuses the
    revoked sessions' access tokens from now on."""
    pending: list[tuple[Sequence[uuid.UUID], datetime]] = session.info.pop(_PENDING, [])
    registry: RevokedSessions | None = session.info.get(REGISTRY)
    if registry is not None:
        for session_ids, revoked_at in pending:
            registry.add(session_ids, revoked_at)


def discard_rolled_back(session: Session, _previous_transaction: Any) -> None:
    """`after_soft_rollback`: revocations that rolled back never happened."""
    session.info.pop(_PENDING, None)
