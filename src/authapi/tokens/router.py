from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from authapi.errors import AuthenticationRequired, InvalidToken, responses
from authapi.tokens.dependencies import CurrentClaims
from authapi.tokens.schemas import AccessClaims

router = APIRouter(tags=["access tokens"])


@router.get(
    "/whoami",
    response_model=AccessClaims,
    responses=responses(AuthenticationRequired, InvalidToken),
)
async def whoami(claims: CurrentClaims) -> dict[str, Any]:
    """The verified claims of the caller's access token; answered without the database."""
    return claims
