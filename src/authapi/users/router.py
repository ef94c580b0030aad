from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from authapi.audit import service as audit
from authapi.dependencies import ClientOrigin, Context, DbSession, Now
from authapi.errors import (
    AuthenticationRequired,
    EmailTaken,
    InvalidRequest,
    InvalidToken,
    RateLimited,
    ServiceUnavailable,
    WrongPassword,
    responses,
)
from authapi.ratelimit.dependencies import limit_by_address
from authapi.sessions import service as sessions
from authapi.sessions.service import RevokeReason
from authapi.tokens.dependencies import CurrentClaims
from authapi.users import service
from authapi.users.dependencies import CurrentUser
from authapi.users.schemas import PasswordChange, UserCreate, UserOut

router = APIRouter(tags=["users"])

AUTH_ERRORS = responses(AuthenticationRequired, InvalidToken)


@router.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses=responses(InvalidRequest, EmailTaken, RateLimited, ServiceUnavailable),
    dependencies=[limit_by_address("register")],
)
async def register(
    body: UserCreate, context: Context, db: DbSession, now: Now, origin: ClientOrigin
) -> UserOut:
    """Register with an email address and a password of 8 to 128 characters."""
    user = await service.create_user(
        db, context.hasher, email=body.email, password=body.password, now=now
    )
    audit.record(db, audit.Event.USER_REGISTERED, at=now, origin=origin, user_id=user.id)
    return UserOut.model_validate(user)


@router.get("/users/me", response_model=UserOut, responses=AUTH_ERRORS)
async def me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)


@router.post(
    "/users/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={
        **AUTH_ERRORS,
        **responses(InvalidRequest, WrongPassword, RateLimited, ServiceUnavailable),
    },
)
async def change_password(
    body: PasswordChange,
    user: CurrentUser,
    claims: CurrentClaims,
    context: Context,
    db: DbSession,
    now: Now,
    origin: ClientOrigin,
) -> Response:
    """Change the password; every other session of the caller ends."""
    # A stolen access token must not become a way around the login throttle.
    await context.rate_limiter.check_account(user.email)
    try:
        await service.change_password(
            db, context.hasher, user, current=body.current_password, new=body.new_password
        )
    except WrongPassword:
        await context.rate_limiter.record_failure(user.email)
        raise
    current_session = uuid.UUID(claims["sid"])
    await sessions.revoke_all(db, user.id, RevokeReason.PASSWORD_CHANGED, now, keep=current_session)
    audit.record(
        db,
        audit.Event.PASSWORD_CHANGED,
        at=now,
        origin=origin,
        user_id=user.id,
        session_id=current_session,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
