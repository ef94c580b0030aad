from __future__ import annotations

from fastapi import APIRouter, Response, status

from authapi.account import password_reset, verification
from authapi.account.refused_links import recording_refusals
from authapi.account.schemas import EmailVerification, PasswordForgot, PasswordReset
from authapi.dependencies import Context, CurrentRequester, DbSession, Now
from authapi.errors import (
    AuthenticationRequired,
    HashingBusy,
    InvalidMailToken,
    InvalidRequest,
    InvalidToken,
    RateLimited,
    ServiceUnavailable,
    responses,
)
from authapi.ratelimit.dependencies import limit_by_address
from authapi.users import service as users
from authapi.users.dependencies import CurrentUser
from authapi.users.schemas import UserOut

router = APIRouter(tags=["account"])

AUTH_ERRORS = (AuthenticationRequired, InvalidToken)
ACCEPTED = {"description": "Accepted: the mail is on its way (or nothing needed sending)."}


@router.post(
    "/email/verification",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,
    responses={
        **responses(*AUTH_ERRORS, RateLimited, ServiceUnavailable, database=True),
        202: ACCEPTED,
    },
    dependencies=[limit_by_address("mail")],
)
async def request_verification(
    user: CurrentUser, context: Context, db: DbSession, now: Now, requester: CurrentRequester
) -> Response:
    """Mail the verification link again (nothing is sent if the address is verified)."""
    await verification.request_link(
        db,
        context.mail_tokens,
        context.settings,
        context.rate_limiter,
        user,
        now=now,
        requester=requester,
    )
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/email/verify",
    response_model=UserOut,
    responses=responses(
        InvalidRequest,
        InvalidMailToken,
        ServiceUnavailable,
        body=True,
        validated=True,
        database=True,
    ),
)
async def verify_email(
    body: EmailVerification, context: Context, db: DbSession, now: Now, requester: CurrentRequester
) -> UserOut:
    """Confirm an address with the token of the link mailed to it."""
    async with recording_refusals(db, context.rate_limiter, now=now, requester=requester):
        user = await verification.confirm(
            db, context.mail_tokens, body.token, now=now, requester=requester
        )
    users.forget_profiles(db, context.profiles, user.id)
    return UserOut.model_validate(user)


@router.post(
    "/password/forgot",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,
    responses={
        **responses(
            InvalidRequest,
            RateLimited,
            ServiceUnavailable,
            body=True,
            validated=True,
            database=True,
        ),
        202: {"description": "Accepted, whether or not an account has the address."},
    },
    dependencies=[limit_by_address("mail")],
)
async def forgot_password(
    body: PasswordForgot, context: Context, db: DbSession, now: Now, requester: CurrentRequester
) -> Response:
    """Mail a link that resets the password, if an active account has the address. The
    answer is the same, in about the same time, if none has: it tells nobody who has an
    account. Limited per client address and per recipient (unknown addresses count too)."""
    await password_reset.request_reset(
        db,
        context.mail_tokens,
        context.settings,
        context.rate_limiter,
        email=body.email,
        now=now,
        requester=requester,
    )
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/password/reset",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=responses(
        InvalidRequest,
        InvalidMailToken,
        HashingBusy,
        ServiceUnavailable,
        body=True,
        validated=True,
        database=True,
    ),
)
async def reset_password(
    body: PasswordReset, context: Context, db: DbSession, now: Now, requester: CurrentRequester
) -> Response:
    """Set a new password (8 to 128 characters) with the token of a reset link. The
    address counts as verified, every session of the user ends (refresh tokens at once,
    access tokens through instant revocation), and a notice is mailed."""
    async with recording_refusals(db, context.rate_limiter, now=now, requester=requester):
        await password_reset.reset(
            db,
            context.hasher,
            context.mail_tokens,
            context.settings,
            context.profiles,
            token=body.token,
            new_password=body.new_password,
            now=now,
            requester=requester,
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
