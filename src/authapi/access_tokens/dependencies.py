from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends
from fastapi.security import OAuth2PasswordBearer

from authapi.dependencies import Context
from authapi.errors import AuthenticationRequired, InvalidToken

# Also what makes /docs show the "Authorize" button with the password flow.
bearer = OAuth2PasswordBearer(tokenUrl="token", auto_error=False)


async def current_claims(
    context: Context, token: Annotated[str | None, Depends(bearer)]
) -> dict[str, Any]:
    """The verified claims of the request's access token, if its session was not
    revoked; no database involved (the revoked sessions are kept in memory)."""
    if not token:
        raise AuthenticationRequired()
    claims = context.verified_tokens.claims(token)
    if claims["sid"] in context.revoked_sessions:
        raise InvalidToken()
    return claims


CurrentClaims = Annotated[dict[str, Any], Depends(current_claims)]
