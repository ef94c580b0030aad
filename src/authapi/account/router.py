from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from authapi.access_tokens.dependencies import CurrentCaller
from authapi.account import deletion, email_change, password_reset, verification
from authapi.account.refused_links import recording_refusals
from authapi.account.schemas import (
    AccountDeletion,
    EmailChange,
    EmailVerification,
    PasswordForgot,
    PasswordReset,
)
from authapi.dependencies import Context, CurrentRequester, DbSession, Now
from authapi.error_bodies import responses
from authapi.errors import (
    AuthenticationRequired,
    EmailTaken,
    HashingBusy,
    InvalidMailToken,
    InvalidRequest,
    InvalidToken,
    LastAdmin,
    RateLimited,
    ServiceUnavailable,
    StepUpRequired,
    WrongPassword,
)
from authapi.mfa.dependencies import step_up
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
        EmailTaken,
        ServiceUnavailable,
        body=True,
        validated=True,
        database=True,
    ),
)
async def verify_email(
    body: EmailVerification, context: Context, db: DbSession, now: Now, requester: CurrentRequester
) -> UserOut:
    """Confirm an address with the token of the link mailed to it: after sign-up, or
    to change the address (every session of the user then ends; 409 if another
    account has taken the address since)."""
    async with recording_refusals(db, context.rate_limiter, now=now, requester=requester):
        user = await verification.confirm(
            db, context.mail_tokens, body.token, now=now, requester=requester
        )
    users.forget_profiles(db, context.profiles, user.id)
    return UserOut.model_validate(user)


@router.post(
    "/users/me/email",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,
    responses={
        **responses(
            *AUTH_ERRORS,
            InvalidRequest,
            WrongPassword,
            StepUpRequired,
            EmailTaken,
            RateLimited,
            ServiceUnavailable,
            body=True,
            validated=True,
            database=True,
        ),
        202: {"description": "Accepted: the confirmation link is on its way to the new address."},
    },
    dependencies=[limit_by_address("mail")],
)
async def change_email(
    request: Request,
    body: EmailChange,
    user: CurrentUser,
    caller: CurrentCaller,
    context: Context,
    db: DbSession,
    now: Now,
    requester: CurrentRequester,
) -> Response:
    """Change the address: a link is mailed to the new one, a notice to the current one,
    and nothing changes until the link's token is posted to /email/verify. 400 if the
    new address is the current one."""
    await email_change.request_change(
        db,
        context.rate_limiter,
        context.mail_tokens,
        context.settings,
        user,
        new_email=body.new_email,
        proof=step_up(context, request, body.current_password, body),
        session_id=caller.session_id,
        now=now,
        requester=requester,
    )
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.delete(
    "/users/me",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=responses(
        *AUTH_ERRORS,
        InvalidRequest,
        WrongPassword,
        StepUpRequired,
        LastAdmin,
        RateLimited,
        ServiceUnavailable,
        body=True,
        validated=True,
        database=True,
    ),
    # It mails a notice: limited as every endpoint that sends mail is.
    dependencies=[limit_by_address("mail")],
)
async def delete_account(
    request: Request,
    body: AccountDeletion,
    user: CurrentUser,
    caller: CurrentCaller,
    context: Context,
    db: DbSession,
    now: Now,
    requester: CurrentRequester,
) -> Response:
    """Delete the account: every session ends, the address can register again, and a
    notice is mailed to it. 409 for the last active admin."""
    await deletion.delete_account(
        db,
        context.settings,
        user,
        proof=step_up(context, request, body.current_password, body),
        session_id=caller.session_id,
        now=now,
        requester=requester,
    )
    users.forget_profiles(db, context.profiles, user.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


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
