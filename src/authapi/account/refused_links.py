"""Refused links in the audit trail."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from authapi.audit import service as audit
from authapi.client_address import Requester
from authapi.errors import InvalidMailToken
from authapi.ratelimit.service import RateLimiter


@asynccontextmanager
async def recording_refusals(
    db: AsyncSession, limiter: RateLimiter, *, now: datetime, requester: Requester
) -> AsyncIterator[None]:
    """Around a use of a link's token: a refused token is recorded (its user is
    unknown), at most once a minute per client address, so that a flood of made-up
    tokens is no flood of writes. InvalidMailToken keeps its transaction's changes."""
    try:
        yield
    except InvalidMailToken:
        if await limiter.first_refusal("mail_token", requester.ip):
            audit.record(db, audit.Event.MAIL_TOKEN_REFUSED, at=now, requester=requester)
        raise
