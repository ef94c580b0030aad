"""The tokens that mailed links carry: `ev_…` (verify an address, or confirm a change of
it) and `pr_…` (reset a password).

A token is 256 random bits from `secrets`; only its HMAC is stored (under a key derived
from the refresh-token key with a domain string of its own, as ratelimit/devices.py
does), so a copy of the database holds nothing that opens an account. Each is single
use (consuming deletes its row, in the caller's transaction), expires, is voided by a
newer one of the same purpose for the same user (issuing deletes the older ones), and
is bound to the account state it is about: a reset token to the password hash, an
email token to the address. Change that state by any other means and the token no
longer matches: a reset link dies when the password changes, an email-change link
when the address changes.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from authapi.config import Settings
from authapi.db import delete_batch
from authapi.errors import InvalidMailToken
from authapi.mail.models import MailToken
from authapi.users.models import User

_DOMAIN = b"authapi mail tokens v1"
TOKEN_BYTES = 32  # 256 bits; the contract asks for at least 128


class Purpose(enum.StrEnum):
    EMAIL_VERIFICATION = "email_verification"
    EMAIL_CHANGE = "email_change"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a purpose's name, not a password

    @property
    def prefix(self) -> str:
        return "pr_" if self is Purpose.PASSWORD_RESET else "ev_"

    def ttl(self, settings: Settings) -> int:
        if self is Purpose.PASSWORD_RESET:
            return settings.password_reset_ttl
        return settings.email_verification_ttl

    def bound_state(self, user: User) -> str:
        """What of the account the token is bound to."""
        return user.password_hash if self is Purpose.PASSWORD_RESET else user.email


class MailTokenKey:
    """The HMAC key of the mail tokens: `MailTokenKey(load_refresh_token_key(settings))`."""

    def __init__(self, refresh_token_key: bytes) -> None:
        self._key = hmac.new(refresh_token_key, _DOMAIN, hashlib.sha256).digest()

    def token_hash(self, purpose: Purpose, token: str) -> bytes:
        message = b"token\0" + purpose.value.encode() + b"\0" + token.encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def fingerprint(self, purpose: Purpose, user: User) -> bytes:
        message = b"state\0" + purpose.value.encode() + b"\0" + purpose.bound_state(user).encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()


@dataclass(frozen=True)
class ConsumedToken:
    user: User
    purpose: Purpose
    new_email: str | None  # the address an email-change token confirms


async def issue(
    db: AsyncSession,
    user: User,
    purpose: Purpose,
    *,
    key: MailTokenKey,
    settings: Settings,
    now: datetime,
    new_email: str | None = None,
) -> str:
    """A new token for `user`; the older ones of this purpose stop working. It is
    stored at the caller's commit: the caller enqueues the mail in the same transaction."""
    if (new_email is not None) != (purpose is Purpose.EMAIL_CHANGE):
        raise ValueError("new_email goes with an email-change token, and only with one")
    await db.execute(
        delete(MailToken).where(MailToken.user_id == user.id, MailToken.purpose == purpose.value)
    )
    token = purpose.prefix + secrets.token_urlsafe(TOKEN_BYTES)
    db.add(
        MailToken(
            id=uuid.uuid4(),
            user_id=user.id,
            purpose=purpose.value,
            token_hash=key.token_hash(purpose, token),
            fingerprint=key.fingerprint(purpose, user),
            new_email=new_email,
            created_at=now,
            expires_at=now + timedelta(seconds=purpose.ttl(settings)),
        )
    )
    await db.flush()
    return token


async def consume(
    db: AsyncSession,
    token: str,
    purposes: Purpose | tuple[Purpose, ...],
    *,
    key: MailTokenKey,
    now: datetime,
) -> ConsumedToken:
    """Use `token` up (in the caller's transaction) and say whose it was, or raise
    InvalidMailToken: unknown, used, expired, voided by a newer one, of another purpose,
    or issued for an account state that has changed since."""
    if isinstance(purposes, Purpose):
        purposes = (purposes,)
    for purpose in purposes:
        if not token.startswith(purpose.prefix):
            continue
        # Deleting is the single use: of two requests with one token, one deletes the
        # row and the other finds nothing (on PostgreSQL it waits for the first's commit).
        result: CursorResult[Any] = await db.execute(  # type: ignore[assignment]
            delete(MailToken)
            .where(
                MailToken.token_hash == key.token_hash(purpose, token),
                MailToken.purpose == purpose.value,
                MailToken.expires_at > now,
            )
            .returning(MailToken.user_id, MailToken.fingerprint, MailToken.new_email)
        )
        row = result.one_or_none()
        if row is None:
            continue
        # Read again, not taken from the session: a caller that looked the token up
        # earlier (`holder`) must see a password changed since, or the binding is void.
        user = await db.get(User, row.user_id, populate_existing=True)
        # Constant time: the fingerprint is a secret-keyed digest of the password hash.
        if user is None or not hmac.compare_digest(row.fingerprint, key.fingerprint(purpose, user)):
            break
        return ConsumedToken(user=user, purpose=purpose, new_email=row.new_email)
    raise InvalidMailToken


async def holder(
    db: AsyncSession, token: str, purpose: Purpose, *, key: MailTokenKey, now: datetime
) -> User:
    """Whose `token` is, without using it up (a read only), or InvalidMailToken as
    `consume` would raise it. For a use case that must do slow work (hash a password)
    between checking the token and using it, without holding a transaction open or
    doing that work for a made-up token; `consume` is still the single use."""
    if not token.startswith(purpose.prefix):
        raise InvalidMailToken
    row = (
        await db.execute(
            select(MailToken.user_id, MailToken.fingerprint).where(
                MailToken.token_hash == key.token_hash(purpose, token),
                MailToken.purpose == purpose.value,
                MailToken.expires_at > now,
            )
        )
    ).one_or_none()
    if row is None:
        raise InvalidMailToken
    user = await db.get(User, row.user_id)
    if user is None or not hmac.compare_digest(row.fingerprint, key.fingerprint(purpose, user)):
        raise InvalidMailToken
    return user


async def prune_batch(db: AsyncSession, now: datetime, size: int) -> int:
    """Delete up to `size` expired tokens (`authapi prune`)."""
    return await delete_batch(db, MailToken.expires_at, now, size)
