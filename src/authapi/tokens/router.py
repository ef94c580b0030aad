from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from authapi.dependencies import Context
from authapi.errors import AuthenticationRequired, InvalidToken, responses
from authapi.tokens.dependencies import CurrentClaims
from authapi.tokens.schemas import AccessClaims

router = APIRouter(tags=["tokens"])


@router.get("/.well-known/jwks.json")
async def jwks(context: Context, response: Response) -> dict[str, Any]:
    """The public signing keys (RFC 7517), for anyone verifying our access tokens."""
    response.headers["Cache-Control"] = f"public, max-age={context.settings.jwks_max_age}"
    return context.access_tokens.keys.jwks()


@router.get(
    "/whoami",
    response_model=AccessClaims,
    responses=responses(AuthenticationRequired, InvalidToken),
)
async def whoami(claims: CurrentClaims) -> dict[str, Any]:
    """The verified claims of the caller's access token; answered without the database."""
    return claims
