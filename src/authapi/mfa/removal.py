"""Every second factor of a user removed at once: an admin's DELETE /admin/users/{id}/mfa
and the operator's `authapi mfa reset EMAIL` (a user who lost their phone). Their TOTP,
recovery codes and passkeys go, and so does every session of theirs: whoever held one
may have come in with the factors now gone (mfa/turned_off.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, delete
from sqlalchemy.ext.asyncio import AsyncSession

from authapi.client_address import Requester
from authapi.config import Settings
from authapi.errors import NotFound
from authapi.mfa.models import RecoveryCode, TotpFactor
from authapi.mfa.turned_off import all_factors_off
from authapi.passkeys.models import Passkey
from authapi.users.models import User


@dataclass(frozen=True)
class Removed:
    """What went: TOTP (0 or 1), recovery codes, passkeys, and the sessions ended."""

    totp: int
    recovery_codes: int
    passkeys: int
    sessions: int


async def _delete(db: AsyncSession, column: Any, user_id: uuid.UUID) -> int:
    result: CursorResult[Any] = await db.execute(  # type: ignore[assignment]
        delete(column.class_).where(column == user_id).execution_options(synchronize_session=False)
    )
    return result.rowcount


async def remove_all(
    db: AsyncSession,
    settings: Settings,
    user_id: uuid.UUID,
    *,
    actor: str,
    now: datetime,
    requester: Requester,
) -> Removed:
    """Remove every second factor of the user and end all their sessions (NotFound for
    an unknown user); audited with `actor` (an admin's id, or "cli"), and mailed."""
    # Locked (on PostgreSQL) so that an enrolment racing the removal waits for it.
    user = await db.get(User, user_id, with_for_update=True, populate_existing=True)
    if user is None:
        raise NotFound("No such user.")
    totp = await _delete(db, TotpFactor.user_id, user_id)
    codes = await _delete(db, RecoveryCode.user_id, user_id)
    passkeys = await _delete(db, Passkey.user_id, user_id)
    ended = await all_factors_off(
        db, settings, user, keep_session=None, removed_by=actor, now=now, requester=requester
    )
    return Removed(totp=totp, recovery_codes=codes, passkeys=passkeys, sessions=ended)
