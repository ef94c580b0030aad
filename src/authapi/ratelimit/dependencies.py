from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Depends, Request, Response

from authapi.client_address import Requester
from authapi.config import Settings
from authapi.context import AppContext
from authapi.dependencies import Context, CurrentRequester, Now
from authapi.errors import RateLimited
from authapi.ratelimit.refusals import audit_refusal

# The device cookie (ratelimit/devices.py), named like the refresh cookie
# (oauth/browser.py): `__Host-` binds it to this host, except in development over
# plain http://localhost, where browsers refuse `__Host-` cookies.
SECURE_DEVICE_COOKIE = "__Host-authapi-device"
DEVELOPMENT_DEVICE_COOKIE = "authapi-device"
# Long, so that the owner's device is still known months later (browsers cap at 400 days).
DEVICE_COOKIE_MAX_AGE = 365 * 24 * 60 * 60


async def enforce_address_limit(
    context: AppContext, requester: Requester, now: datetime, name: str
) -> None:
    """Count this request of the client address against the limit `name`; a refusal
    is recorded in the audit trail once a minute per limit and address."""
    try:
        await context.rate_limiter.check_address(name, requester.ip)
    except RateLimited:
        await audit_refusal(
            context.rate_limiter,
            context.sessionmaker,
            name,
            requester.ip,
            now=now,
            requester=requester,
        )
        raise


def limit_by_address(name: str) -> Any:
    """A route dependency counting each request against the client address limit `name`."""

    async def check(context: Context, requester: CurrentRequester, now: Now) -> None:
        await enforce_address_limit(context, requester, now, name)

    return Depends(check)


def device_cookie_name(settings: Settings) -> str:
    return SECURE_DEVICE_COOKIE if settings.cookie_secure else DEVELOPMENT_DEVICE_COOKIE


def read_device_cookie(request: Request, settings: Settings) -> str | None:
    return request.cookies.get(device_cookie_name(settings))


def set_device_cookie(response: Response, settings: Settings, value: str) -> None:
    response.set_cookie(
        device_cookie_name(settings),
        value,
        max_age=DEVICE_COOKIE_MAX_AGE,
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )
