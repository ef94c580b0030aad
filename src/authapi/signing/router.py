from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from authapi.dependencies import Context
from authapi.error_bodies import responses

router = APIRouter(tags=["signing keys"])


@router.get("/.well-known/jwks.json", responses=responses())
async def jwks(context: Context, response: Response) -> dict[str, Any]:
    """The public signing keys (RFC 7517), for anyone verifying our access tokens."""
    response.headers["Cache-Control"] = f"public, max-age={context.settings.jwks_max_age}"
    return context.access_tokens.keys.jwks()
