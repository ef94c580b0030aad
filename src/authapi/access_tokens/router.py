from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter

from authapi.access_tokens.dependencies import CurrentCaller
from authapi.access_tokens.schemas import AccessClaims
from authapi.error_bodies import responses
from authapi.errors import AuthenticationRequired, InvalidToken

router = APIRouter(tags=["access tokens"])


@router.get(
    "/whoami",
    response_model=AccessClaims,
    responses=responses(AuthenticationRequired, InvalidToken),
)
async def whoami(caller: CurrentCaller) -> Mapping[str, Any]:
    """The verified claims of the caller's access token; answered without the database."""
    return caller.claims
