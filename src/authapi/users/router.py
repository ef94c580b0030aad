from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Request, Response, status

from authapi.access_tokens.dependencies import CurrentClaims
from authapi.audit import service as audit
from authapi.db import transaction
from authapi.dependencies import Context, CurrentRequester, DbSession, Now
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
from authapi.ratelimit.dependencies import limit_by_address, read_device_cookie
from authapi.sessions import service as sessions
from authapi.sessions.models import RevokeReason
from authapi.users import service
from authapi.users.dependencies import CurrentUser, current_user
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
    body: UserCreate, context: Context, db: DbSession, now: Now, requester: CurrentRequester
) -> UserOut:
    """Register with an email address and a password of 8 to 128 characters."""
    user = await service.create_user(
        db, context.hasher, email=body.email, password=body.password, now=now
    )
    audit.record(db, audit.Event.USER_REGISTERED, at=now, requester=requester, user_id=user.id)
    return UserOut.model_validate(user)


@router.get("/users/me", response_model=UserOut, responses=AUTH_ERRORS)
async def me(claims: CurrentClaims, context: Context) -> UserOut:
    """The caller's profile. Read from the database once per session and access-token
    lifetime, then answered from memory: every change to what it shows (the role,
    whether the account is active) ends the user's sessions, whose tokens are then
    refused before this runs."""
    now = time.time()
    profile = context.profiles.get(claims["sid"], now)
    if profile is None:
        # Its own transaction, only when needed: a hit opens no session at all.
        async with transaction(context.sessionmaker) as db:
            profile = UserOut.model_validate(await current_user(db, claims))
        expires_at = now + context.settings.access_token_ttl
        context.profiles.put(claims["sid"], profile, expires_at, now)
    return profile


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
    request: Request,
    body: PasswordChange,
    user: CurrentUser,
    claims: CurrentClaims,
    context: Context,
    db: DbSession,
    now: Now,
    requester: CurrentRequester,
) -> Response:
    """Change the password; every other session of the caller ends."""
    # A stolen access token must not become a way around the login throttle: the
    # attempt counts like a login's, before the current password is verified.
    await context.rate_limiter.admit_password_attempt(
        user.email,
        address=requester.ip,
        device_cookie=read_device_cookie(request, context.settings),
    )
    await service.change_password(
        db, context.hasher, user, current=body.current_password, new=body.new_password
    )
    current_session = uuid.UUID(claims["sid"])
    await sessions.revoke_all(db, user.id, RevokeReason.PASSWORD_CHANGED, now, keep=current_session)
    audit.record(
        db,
        audit.Event.PASSWORD_CHANGED,
        at=now,
        requester=requester,
        user_id=user.id,
        session_id=current_session,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
