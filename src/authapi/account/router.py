from __future__ import annotations

from fastapi import APIRouter, Response, status

from authapi.account import verification
from authapi.account.refused_links import recording_refusals
from authapi.account.schemas import EmailVerification
from authapi.dependencies import Context, CurrentRequester, DbSession, Now
from authapi.errors import (
    AuthenticationRequired,
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
