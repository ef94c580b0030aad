from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import OAuth2PasswordBearer

from authapi.access_tokens.service import Caller
from authapi.dependencies import Context
from authapi.errors import AuthenticationRequired, InvalidToken

# Also what makes /docs show the "Authorize" button with the password flow.
bearer = OAuth2PasswordBearer(tokenUrl="token", auto_error=False)


async def current_caller(context: Context, token: Annotated[str | None, Depends(bearer)]) -> Caller:
    """The caller of a request with a valid access token whose session was not
    revoked; no database involved (the revoked sessions are kept in memory)."""
    if not token:
        raise AuthenticationRequired()
    claims = context.verified_tokens.claims(token)
    if claims["sid"] in context.revoked_sessions:
        raise InvalidToken()
    return Caller.from_claims(claims)


CurrentCaller = Annotated[Caller, Depends(current_caller)]
