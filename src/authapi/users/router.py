from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from authapi.dependencies import Context, DbSession, Now
from authapi.errors import (
    NO_STORE,
    AuthenticationRequired,
    EmailTaken,
    InvalidRequest,
    InvalidToken,
    WrongPassword,
    responses,
)
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
    responses=responses(InvalidRequest, EmailTaken),
)
async def register(
    body: UserCreate, response: Response, context: Context, db: DbSession, now: Now
) -> UserOut:
    """Register with an email address and a password of 8 to 128 characters."""
    user = await service.create_user(
        db, context.hasher, email=body.email, password=body.password, now=now
    )
    response.headers.update(NO_STORE)
    return UserOut.model_validate(user)


@router.get("/users/me", response_model=UserOut, responses=AUTH_ERRORS)
async def me(user: CurrentUser, response: Response) -> UserOut:
    response.headers.update(NO_STORE)
    return UserOut.model_validate(user)


@router.post(
    "/users/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**AUTH_ERRORS, **responses(InvalidRequest, WrongPassword)},
)
async def change_password(
    body: PasswordChange,
    user: CurrentUser,
    claims: CurrentClaims,
    context: Context,
    db: DbSession,
    now: Now,
) -> Response:
    """Change the password; every other session of the caller ends."""
    await service.change_password(
        db, context.hasher, user, current=body.current_password, new=body.new_password
    )
    await sessions.revoke_all(
        db, user.id, RevokeReason.PASSWORD_CHANGED, now, keep=uuid.UUID(claims["sid"])
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
