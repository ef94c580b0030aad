from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends
from fastapi.security import OAuth2PasswordBearer

from authapi.dependencies import Context
from authapi.errors import AuthenticationRequired

# Also what makes /docs show the "Authorize" button with the password flow.
bearer = OAuth2PasswordBearer(tokenUrl="token", auto_error=False)


async def current_claims(
    context: Context, token: Annotated[str | None, Depends(bearer)]
) -> dict[str, Any]:
    """The verified claims of the request's access token; no database involved."""
    if not token:
        raise AuthenticationRequired()
    return context.access_tokens.verify(token)


CurrentClaims = Annotated[dict[str, Any], Depends(current_claims)]
