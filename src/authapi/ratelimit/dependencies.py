from __future__ import annotations

from typing import Any

from fastapi import Depends

from authapi.audit import service as audit
from authapi.dependencies import ClientOrigin, Context, Now
from authapi.errors import RateLimited


def limit_by_address(name: str) -> Any:
    """A route dependency counting each request against the client address limit `name`."""

    async def check(context: Context, origin: ClientOrigin, now: Now) -> None:
        try:
            await context.rate_limiter.check_address(name, origin.ip)
        except RateLimited:
            if await context.rate_limiter.first_refusal(name, origin.ip):
                await audit.record_now(
                    context.sessionmaker,
                    audit.Event.RATE_LIMITED,
                    at=now,
                    origin=origin,
                    detail=name,
                )
            raise

    return Depends(check)
