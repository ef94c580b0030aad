"""The one error body of every surface, and what /docs says about it.

Every error body has the RFC 6749 §5.2 shape, `{"error": CODE, "error_description": ...}`,
so clients parse one thing; `error_response` makes each one, `domain_error_response` the
one of a domain error (errors.py), and `responses` declares a route's errors for OpenAPI.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.types import Receive, Scope, Send

from authapi.errors import DomainError, ServiceUnavailable

# RFC 6749 endpoints: their malformed input is `invalid_request` with status 400.
TOKEN_ENDPOINTS = frozenset({"/token", "/refresh", "/revoke"})
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class ErrorBody(BaseModel):
    error: str
    error_description: str


def error_response(
    status_code: int,
    error: str,
    description: str,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """The one maker of error bodies: error_handlers.py, the refusals of the ASGI
    middleware (which answer before any route), CORS and /metrics all answer with it."""
    return JSONResponse(
        {"error": error, "error_description": description, **(extra or {})},
        status_code=status_code,
        headers={**NO_STORE, **(headers or {})},
    )


def responses(
    *errors: type[DomainError],
    body: bool = False,
    validated: bool = False,
    database: bool = False,
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for a route, so /docs shows each error it can answer: the
    route's own `errors`, and what may answer before its handler runs. Every route: 400
    for a credential in the URL (dependencies.refuse_secrets_in_query). With a request
    `body`: 400 for one that cannot be read, 413 for one over the size limit
    (middleware.SizeLimits). With input to be `validated`: 422 from the one validation
    handler, in our body (declaring it keeps FastAPI's own 422 out). With a `database`
    transaction: 503 while the database is down."""
    codes: dict[int, list[str]] = {400: ["invalid_request"]}
    if body:
        codes[413] = ["request_too_large"]
    if validated:
        codes[422] = ["invalid_request"]
    if database:
        codes[503] = [ServiceUnavailable.error]
    for error in errors:
        listed = codes.setdefault(error.status_code, [])
        if error.error not in listed:
            listed.append(error.error)
    return {
        status: {"model": ErrorBody, "description": ", ".join(listed)}
        for status, listed in sorted(codes.items())
    }


def domain_error_response(exc: DomainError) -> JSONResponse:
    return error_response(
        exc.status_code, exc.error, exc.error_description, exc.headers(), exc.extra()
    )


class RenderedError:
    """A domain error's answer rendered once, then sent as often as it is needed: for a
    refusal that comes in bursts (HashingAdmission's 503 during a login flood), where
    building a JSONResponse for each refusal was about a tenth of the work of answering it.

    Each answer gets a header list of its own: a layer above it (CORS, SecurityHeaders,
    RequestContext) may add its headers to the very list it is sent."""

    def __init__(self, exc: DomainError) -> None:
        response = domain_error_response(exc)
        self.status_code = response.status_code
        self._headers = tuple(response.raw_headers)
        self._body = bytes(response.body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = list(self._headers)
        await send({"type": "http.response.start", "status": self.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": self._body})
