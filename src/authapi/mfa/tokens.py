"""The `mfa_token`: a login whose password was right, waiting for its second factor.

It is `mfa_` + 256 random bits; only its HMAC (under a key derived from the refresh-token
key with a domain string of its own, as mail/tokens.py does) is stored, so a copy of the
database cannot finish anybody's login. It lasts five minutes (the app's clock), is
single use (`finish` deletes it) and dies after five attempts: `spend_attempt` counts an
attempt in ONE conditional UPDATE before any code is checked, so concurrent guesses
cannot overtake the limit.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from authapi import auth_methods
from authapi.auth_methods import AuthMethods
from authapi.db import delete_batch
from authapi.errors import InvalidGrant
from authapi.mfa.models import MfaToken

_DOMAIN = b"authapi mfa tokens v1"
PREFIX = "mfa_"
TTL = timedelta(minutes=5)
MAX_ATTEMPTS = 5


class MfaTokenKey:
    """The HMAC key of the mfa_tokens: `MfaTokenKey(load_refresh_token_key(settings))`."""

    def __init__(self, refresh_token_key: bytes) -> None:
        self._key = hmac.new(refresh_token_key, _DOMAIN, hashlib.sha256).digest()

    def token_hash(self, token: str) -> str:
        return hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class PendingLogin:
    """What an attempt on an mfa_token gives back: whose login, and its first factor."""

    token_hash: str
    user_id: uuid.UUID
    scope: str
    amr: AuthMethods


async def issue(
    db: AsyncSession,
    key: MfaTokenKey,
    *,
    user_id: uuid.UUID,
    scope: str,
    amr: AuthMethods,
    now: datetime,
) -> str:
    """A new mfa_token for a login whose first factor (`amr`) was right."""
    token = PREFIX + secrets.token_urlsafe(32)
    db.add(
        MfaToken(
            token_hash=key.token_hash(token),
            user_id=user_id,
            scope=scope,
            amr=auth_methods.to_column(amr),
            attempts=0,
            created_at=now,
            expires_at=now + TTL,
        )
    )
    await db.flush()
    return token


async def spend_attempt(
    db: AsyncSession, key: MfaTokenKey, token: str, *, now: datetime
) -> PendingLogin:
    """Count one attempt on the token, before its code is checked; InvalidGrant for a
    token that is unknown, spent, expired or out of attempts (one answer for all)."""
    if not token.startswith(PREFIX):
        raise InvalidGrant()
    token_hash = key.token_hash(token)
    row = (
        await db.execute(
            update(MfaToken)
            .where(
                MfaToken.token_hash == token_hash,
                MfaToken.attempts < MAX_ATTEMPTS,
                MfaToken.expires_at > now,
            )
            .values(attempts=MfaToken.attempts + 1)
            .returning(MfaToken.user_id, MfaToken.scope, MfaToken.amr)
            .execution_options(synchronize_session=False)
        )
    ).one_or_none()
    if row is None:
        raise InvalidGrant()
    return PendingLogin(
        token_hash=token_hash,
        user_id=row.user_id,
        scope=row.scope,
        amr=auth_methods.from_column(row.amr),
    )


async def user_of(
    db: AsyncSession, key: MfaTokenKey, token: str, *, now: datetime
) -> uuid.UUID | None:
    """Whose login a live token stands for (nothing spent): for the options of a passkey
    as its second factor. None for a token that could not be used."""
    if not token.startswith(PREFIX):
        return None
    user_id: uuid.UUID | None = await db.scalar(
        select(MfaToken.user_id).where(
            MfaToken.token_hash == key.token_hash(token),
            MfaToken.attempts < MAX_ATTEMPTS,
            MfaToken.expires_at > now,
        )
    )
    return user_id


async def finish(db: AsyncSession, pending: PendingLogin) -> None:
    """The second factor was right: the token is spent (single use). Of two requests
    that both got this far, only the one whose delete took the row goes on."""
    result: CursorResult[Any] = await db.execute(  # type: ignore[assignment]
        delete(MfaToken)
        .where(MfaToken.token_hash == pending.token_hash)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise InvalidGrant()


async def prune_batch(db: AsyncSession, now: datetime, size: int) -> int:
    """Delete up to `size` expired mfa_tokens (`authapi prune`)."""
    return await delete_batch(db, MfaToken.expires_at, now, size)
