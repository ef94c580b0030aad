"""Refusals by a rate limit, in the audit trail."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authapi.audit import service as audit
from authapi.client_address import Requester
from authapi.errors import AccountThrottled
from authapi.ratelimit.service import RateLimiter


async def audit_refusal(
    limiter: RateLimiter,
    maker: async_sessionmaker[AsyncSession],
    name: str,
    key: str,
    *,
    now: datetime,
    requester: Requester,
    **fields: Any,
) -> None:
    """Record that the limit `name` refused `key`: at most once a minute per limit and
    key (a flood of refusals must not become a flood of writes), and in a transaction of
    its own, since the refused request's rolls back."""
    if await limiter.first_refusal(name, key):
        await audit.record_now(
            maker,
            audit.Event.RATE_LIMITED,
            at=now,
            requester=requester,
            detail=name,
            **fields,
        )


async def admit_password_attempt(
    db: AsyncSession,
    limiter: RateLimiter,
    account: str,
    *,
    audit_key: str,
    user_id: uuid.UUID | Callable[[], Awaitable[uuid.UUID | None]],
    now: datetime,
    requester: Requester,
    device_cookie: str | None,
) -> None:
    """Count a password attempt on `account` before its hash is verified (so concurrent
    guesses cannot overtake the limit). When a limit refuses it, audit the first refusal
    per limit and `audit_key` once a minute, in the request's transaction, and re-raise
    AccountThrottled. `user_id` may be a lookup: it then runs only for an audited
    refusal, never for each refused attempt of a flood."""
    try:
        await limiter.admit_password_attempt(
            account, address=requester.ip, device_cookie=device_cookie
        )
    except AccountThrottled as throttled:
        if await limiter.first_refusal(throttled.limit, audit_key):
            audit.record(
                db,
                audit.Event.RATE_LIMITED,
                at=now,
                requester=requester,
                user_id=await user_id() if callable(user_id) else user_id,
                detail=throttled.limit,
            )
        raise
