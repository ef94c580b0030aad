from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from authapi.access_tokens.dependencies import CurrentCaller
from authapi.dependencies import Context, CurrentRequester, DbSession, Now
from authapi.error_bodies import responses
from authapi.errors import (
    AuthenticationRequired,
    EmailTaken,
    InvalidRequest,
    InvalidToken,
    RateLimited,
    ServiceUnavailable,
    StepUpRequired,
    WrongPassword,
)
from authapi.mfa.dependencies import step_up
from authapi.openapi import user_links
from authapi.ratelimit.dependencies import limit_by_address
from authapi.users import service
from authapi.users.dependencies import CurrentUser
from authapi.users.schemas import PasswordChange, UserCreate, UserOut

router = APIRouter(tags=["users"])

AUTH_ERRORS = (AuthenticationRequired, InvalidToken)


@router.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses={
        **responses(
            InvalidRequest,
            EmailTaken,
            RateLimited,
            ServiceUnavailable,
            body=True,
            validated=True,
            database=True,
        ),
        201: {"links": user_links("the new user", "/id")},
    },
    dependencies=[limit_by_address("register")],
)
async def register(
    body: UserCreate, context: Context, db: DbSession, now: Now, requester: CurrentRequester
) -> UserOut:
    """Register with an email address and a password of 8 to 128 characters; a link
    that verifies the address is mailed to it."""
    user = await service.register(
        db,
        context.hasher,
        context.mail_tokens,
        context.settings,
        email=body.email,
        password=body.password,
        now=now,
        requester=requester,
    )
    return UserOut.model_validate(user)


@router.get(
    "/users/me",
    response_model=UserOut,
    # 503: a profile not yet in memory is read from the database.
    responses=responses(*AUTH_ERRORS, database=True),
)
async def me(caller: CurrentCaller, context: Context) -> UserOut:
    """The caller's profile (answered from memory after the first time in a session)."""
    return await service.profile(
        context.sessionmaker, context.profiles, caller, ttl=context.settings.access_token_ttl
    )


@router.post(
    "/users/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=responses(
        *AUTH_ERRORS,
        InvalidRequest,
        WrongPassword,
        StepUpRequired,
        RateLimited,
        ServiceUnavailable,
        body=True,
        validated=True,
        database=True,
    ),
)
async def change_password(
    request: Request,
    body: PasswordChange,
    user: CurrentUser,
    caller: CurrentCaller,
    context: Context,
    db: DbSession,
    now: Now,
    requester: CurrentRequester,
) -> Response:
    """Change the password; every other session of the caller ends, and a notice is
    mailed to the address."""
    await service.change_password(
        db,
        context.hasher,
        context.settings,
        user,
        proof=step_up(context, request, body.current_password, body),
        new=body.new_password,
        session_id=caller.session_id,
        now=now,
        requester=requester,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
