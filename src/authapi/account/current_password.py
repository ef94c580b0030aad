"""Asking for the current password again, before a change that a stolen access token
alone must not make (the address, the account's deletion)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from authapi.client_address import Requester
from authapi.db import end_read_only_transaction
from authapi.errors import WrongPassword
from authapi.ratelimit.refusals import admit_password_attempt
from authapi.ratelimit.service import RateLimiter
from authapi.users.models import User
from authapi.users.passwords import PasswordHasher


async def check(
    db: AsyncSession,
    hasher: PasswordHasher,
    limiter: RateLimiter,
    user: User,
    password: str,
    *,
    now: datetime,
    requester: Requester,
    device_cookie: str | None,
) -> None:
    """Raise WrongPassword unless `password` is the user's. The attempt counts like a
    login's, before the hash is verified (as users.service.change_password does): a
    stolen access token must not become a way around the login throttle. The request's
    transaction, which has only read, ends before the hash: the caller's changes go in
    the next one."""
    await admit_password_attempt(
        db,
        limiter,
        user.email,
        audit_key=str(user.id),  # the id: the limiter's storage holds no addresses
        user_id=user.id,
        now=now,
        requester=requester,
        device_cookie=device_cookie,
    )
    await end_read_only_transaction(db)
    async with hasher.slot():
        matches, _ = await hasher.verify(password, user.password_hash)
    if not matches:
        raise WrongPassword()
