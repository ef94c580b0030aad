"""Recovery codes: ten single-use codes, the way back in without the authenticator.

Each is 12 characters of a 32-letter alphabet (60 bits), shown as `xxxx-xxxx-xxxx`;
only an HMAC of it, bound to its user, is stored, under a key derived from the
refresh-token key (a database dump alone tells nothing). Typed case-insensitively, with
or without the hyphens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from authapi.mfa.models import RecoveryCode

COUNT = 10
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford's base32: no i, l, o, u
_LENGTH = 12
_GROUP = 4
_DOMAIN = b"authapi recovery codes v1"


class RecoveryCodeKey:
    """The HMAC key of the recovery codes: `RecoveryCodeKey(load_refresh_token_key(s))`."""

    def __init__(self, refresh_token_key: bytes) -> None:
        self._key = hmac.new(refresh_token_key, _DOMAIN, hashlib.sha256).digest()

    def code_hash(self, user_id: uuid.UUID, code: str) -> str:
        return hmac.new(self._key, user_id.bytes + code.encode(), hashlib.sha256).hexdigest()


def _new_code() -> str:
    letters = "".join(secrets.choice(_ALPHABET) for _ in range(_LENGTH))
    return "-".join(letters[i : i + _GROUP] for i in range(0, _LENGTH, _GROUP))


def normalise(code: str) -> str | None:
    """The code as stored (lowercase, no separators), or None if it cannot be one."""
    letters = code.strip().lower().replace("-", "").replace(" ", "")
    if len(letters) != _LENGTH or any(letter not in _ALPHABET for letter in letters):
        return None
    return letters


async def replace(
    db: AsyncSession, key: RecoveryCodeKey, user_id: uuid.UUID, now: datetime
) -> list[str]:
    """A new set for the user (the old set stops working); the codes, to show once."""
    codes = [_new_code() for _ in range(COUNT)]
    await db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    db.add_all(
        RecoveryCode(
            user_id=user_id,
            code_hash=key.code_hash(user_id, normalise(code) or ""),
            created_at=now,
        )
        for code in codes
    )
    await db.flush()
    return codes


async def spend(
    db: AsyncSession, key: RecoveryCodeKey, user_id: uuid.UUID, code: str, now: datetime
) -> int | None:
    """Use up one of the user's unused codes: how many are left after it, else None.
    One conditional UPDATE: of two requests with the same code, one spends it."""
    letters = normalise(code)
    if letters is None:
        return None
    spent = await db.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user_id,
            RecoveryCode.code_hash == key.code_hash(user_id, letters),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=now)
        .returning(RecoveryCode.id)
    )
    if spent.first() is None:
        return None
    left = await db.scalar(
        select(func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
    )
    return int(left or 0)


async def delete_all(db: AsyncSession, user_id: uuid.UUID) -> None:
    await db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
