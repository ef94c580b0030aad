from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Depends

from authapi.access_tokens.dependencies import CurrentClaims
from authapi.dependencies import DbSession
from authapi.errors import Forbidden, InvalidToken
from authapi.users import service
from authapi.users.models import User


async def current_user(db: DbSession, claims: CurrentClaims) -> User:
    """The caller, from the database: for endpoints that need more than the token says."""
    user = await service.get_user(db, uuid.UUID(claims["sub"]))
    if user is None or not user.is_active:
        raise InvalidToken()
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def require_role(role: str) -> Any:
    """A dependency that admits only callers whose current role (read from the
    database, so a demotion takes effect at once) is `role`."""

    async def check(user: CurrentUser) -> User:
        if user.role != role:
            raise Forbidden()
        return user

    return Depends(check)


AdminUser = Annotated[User, require_role("admin")]
