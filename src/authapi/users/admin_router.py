"""The admin API: list users, disable or re-enable them, change their role, end their
sessions, remove their second factors, mail them a password reset link (admin role)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from authapi.dependencies import Context, CurrentRequester, DbSession, Now
from authapi.error_bodies import responses
from authapi.errors import (
    AccountDisabled,
    AuthenticationRequired,
    Forbidden,
    InvalidToken,
    NotFound,
    OwnAccountChange,
    RateLimited,
)
from authapi.mfa import removal
from authapi.openapi import user_links
from authapi.users import admin_service as service
from authapi.users import service as users
from authapi.users.dependencies import AdminUser
from authapi.users.schemas import EmailCursor, EmailFragment, Role, UserOut, UserPage, UserUpdate

router = APIRouter(tags=["admin"])

ADMIN_ERRORS = (AuthenticationRequired, InvalidToken, Forbidden)


@router.get(
    "/admin/users",
    response_model=UserPage,
    responses={
        **responses(*ADMIN_ERRORS, validated=True, database=True),
        200: {"links": user_links("the first user", "/items/0/id")},
    },
)
async def list_users(
    _admin: AdminUser,
    db: DbSession,
    email: Annotated[
        EmailFragment | None,
        Query(description="part of the email address, in any letter case"),
    ] = None,
    role: Role | None = None,
    is_active: bool | None = None,
    mfa_enabled: bool | None = None,
    after: Annotated[
        EmailCursor | None, Query(description="next_after of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> UserPage:
    """Users in email order, filtered and paginated (admin role). Pass the same filters
    with `after` for the next page."""
    rows = await service.list_users(
        db,
        limit=limit + 1,
        after=after,
        email=email,
        role=role,
        is_active=is_active,
        mfa_enabled=mfa_enabled,
    )
    page = rows[:limit]
    return UserPage(
        items=[UserOut.model_validate(row) for row in page],
        next_after=page[-1].email if len(rows) > limit else None,
    )


@router.patch(
    "/admin/users/{user_id}",
    response_model=UserOut,
    responses=responses(
        *ADMIN_ERRORS, NotFound, OwnAccountChange, body=True, validated=True, database=True
    ),
)
async def update_user(
    user_id: uuid.UUID,
    body: UserUpdate,
    admin: AdminUser,
    db: DbSession,
    now: Now,
    requester: CurrentRequester,
) -> UserOut:
    """Set a user's role or whether they may log in (admin role). Disabling the user or
    changing their role ends every session of theirs; fields that already have the
    given value change nothing. An admin cannot do either to their own account (409)."""
    user = await service.change_account(
        db,
        actor_id=admin.id,
        user_id=user_id,
        role=body.role,
        is_active=body.is_active,
        now=now,
        requester=requester,
    )
    return UserOut.model_validate(user)


@router.delete(
    "/admin/users/{user_id}/sessions",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=responses(*ADMIN_ERRORS, NotFound, validated=True, database=True),
)
async def end_user_sessions(
    user_id: uuid.UUID, admin: AdminUser, db: DbSession, now: Now, requester: CurrentRequester
) -> Response:
    """End every session of a user (admin role): their refresh tokens are refused."""
    await service.end_sessions(db, actor_id=admin.id, user_id=user_id, now=now, requester=requester)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/admin/users/{user_id}/mfa",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=responses(*ADMIN_ERRORS, NotFound, validated=True, database=True),
)
async def remove_user_mfa(
    user_id: uuid.UUID,
    admin: AdminUser,
    context: Context,
    db: DbSession,
    now: Now,
    requester: CurrentRequester,
) -> Response:
    """Remove every second factor of a user (TOTP, recovery codes, passkeys) and end
    every session of theirs (admin role): for a user who lost their authenticator."""
    await removal.remove_all(
        db, context.settings, user_id, actor=str(admin.id), now=now, requester=requester
    )
    users.forget_profiles(db, context.profiles, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/admin/users/{user_id}/password-reset",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,
    responses={
        **responses(
            *ADMIN_ERRORS, NotFound, AccountDisabled, RateLimited, validated=True, database=True
        ),
        202: {"description": "Accepted: the reset link is on its way to the user."},
    },
)
async def mail_password_reset(
    user_id: uuid.UUID,
    admin: AdminUser,
    context: Context,
    db: DbSession,
    now: Now,
    requester: CurrentRequester,
) -> Response:
    """Mail a user a link to choose a new password (admin role); the admin never sees or
    sets it. An earlier reset link stops working; the user's sessions go on until the
    link is used. 409 for a disabled account (enable it first); limited per recipient."""
    await service.mail_password_reset(
        db,
        context.mail_tokens,
        context.settings,
        context.rate_limiter,
        actor_id=admin.id,
        user_id=user_id,
        now=now,
        requester=requester,
    )
    return Response(status_code=status.HTTP_202_ACCEPTED)
