from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends

from authapi.access_tokens.dependencies import CurrentCaller
from authapi.dependencies import DbSession
from authapi.errors import Forbidden
from authapi.users import service
from authapi.users.models import User


async def current_user(db: DbSession, caller: CurrentCaller) -> User:
    """The caller, from the database: for endpoints that need more than the token says."""
    return await service.active_user(db, caller)


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
