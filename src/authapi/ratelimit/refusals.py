"""Refusals by a rate limit, in the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authapi.audit import service as audit
from authapi.client_address import Requester
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
