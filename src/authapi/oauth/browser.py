"""Browser mode: the refresh token travels in an HttpOnly cookie, never through JavaScript.

A client asks for it with the header `X-Token-Delivery: cookie` on `POST /token`
(password grant), `POST /refresh` and `POST /logout`. The same header is the CSRF
defence: a cross-site form cannot send a custom header, and a cross-site script cannot
either without passing a CORS preflight, which only `AUTHAPI_CORS_ORIGINS` pass. On top
of that, a request whose `Origin` (or `Sec-Fetch-Site`) says it comes from anywhere but
our own origin or an allowed one is refused. A refused request changes nothing.

The cookie is `__Host-authapi-refresh` (bound to this host, `Path=/`, `Secure`), or
`authapi-refresh` when `AUTHAPI_COOKIE_SECURE=false` in development over plain
http://localhost, where browsers refuse `__Host-` cookies. `/refresh` and `/logout`,
the endpoints that read it, live at the root, so no narrower `Path` would cover them.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from fastapi import Request, Response

from authapi.config import Settings
from authapi.errors import DomainError

DELIVERY_HEADER = "X-Token-Delivery"
COOKIE_DELIVERY = "cookie"
SECURE_COOKIE = "__Host-authapi-refresh"
DEVELOPMENT_COOKIE = "authapi-refresh"


class CsrfRejected(DomainError):
    status_code = 403
    error = "csrf_rejected"
    description = "Cross-site request refused."


def cookie_name(settings: Settings) -> str:
    return SECURE_COOKIE if settings.cookie_secure else DEVELOPMENT_COOKIE


def wants_cookie(request: Request) -> bool:
    return request.headers.get(DELIVERY_HEADER, "").strip().lower() == COOKIE_DELIVERY


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def check_same_site(request: Request, settings: Settings) -> None:
    """The CSRF check for every request that reads or sets the refresh cookie."""
    if not wants_cookie(request):
        raise CsrfRejected(f"Requests using the refresh cookie need `{DELIVERY_HEADER}: cookie`.")
    origin = request.headers.get("origin")
    if origin is not None:
        allowed = {_origin_of(settings.issuer), *settings.cors_origins}
        if origin.rstrip("/") not in allowed:
            raise CsrfRejected(f"Origin {origin[:100]} is not allowed.")
    elif request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise CsrfRejected()


def read_cookie(request: Request, settings: Settings) -> str | None:
    return request.cookies.get(cookie_name(settings))


def set_cookie(
    response: Response, settings: Settings, token: str, expires_at: datetime, now: datetime
) -> None:
    response.set_cookie(
        cookie_name(settings),
        token,
        max_age=max(0, int((expires_at - now).total_seconds())),  # the session's idle deadline
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )


def clear_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        cookie_name(settings),
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )
