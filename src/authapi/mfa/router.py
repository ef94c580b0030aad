"""The TOTP endpoints and new recovery codes (POST /users/me/mfa/...); the MFA grant
that logs in with a code is in oauth/."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from authapi.access_tokens.dependencies import CurrentCaller
from authapi.account import current_password
from authapi.dependencies import Context, CurrentRequester, DbSession, Now
from authapi.error_bodies import responses
from authapi.errors import (
    AuthenticationRequired,
    HashingBusy,
    InvalidToken,
    RateLimited,
    ServiceUnavailable,
    StepUpRequired,
    TotpState,
    WrongCode,
    WrongPassword,
)
from authapi.mfa import service, totp
from authapi.mfa.dependencies import step_up
from authapi.mfa.schemas import (
    RecoveryCodes,
    SensitiveChange,
    TotpConfirmation,
    TotpEnrolment,
    TotpSecret,
)
from authapi.ratelimit.dependencies import read_device_cookie
from authapi.users import service as users
from authapi.users.dependencies import CurrentUser

router = APIRouter(tags=["second factors"])

AUTH_ERRORS = (AuthenticationRequired, InvalidToken)
STEP_UP_ERRORS = (WrongPassword, StepUpRequired, RateLimited, HashingBusy)


@router.post(
    "/users/me/mfa/totp",
    response_model=TotpSecret,
    responses=responses(
        *AUTH_ERRORS,
        WrongPassword,
        TotpState,
        RateLimited,
        ServiceUnavailable,
        body=True,
        validated=True,
        database=True,
    ),
)
async def start_totp(
    request: Request,
    response: Response,
    body: TotpEnrolment,
    user: CurrentUser,
    context: Context,
    db: DbSession,
    now: Now,
    requester: CurrentRequester,
) -> TotpSecret:
    """Start turning TOTP on (the current password asked again): a new secret, its
    otpauth URI and QR code for the authenticator app. Nothing changes at login until
    POST /users/me/mfa/totp/confirm has a first right code. 409 if TOTP is on."""
    response.headers["Cache-Control"] = "no-store"  # a secret
    await current_password.check(
        db,
        context.hasher,
        context.rate_limiter,
        user,
        body.current_password,
        now=now,
        requester=requester,
        device_cookie=read_device_cookie(request, context.settings),
    )
    secret, uri = await service.start_enrolment(db, context.settings, context.kek, user, now=now)
    return TotpSecret(secret=secret, otpauth_uri=uri, qr_svg=totp.qr_svg(uri))


@router.post(
    "/users/me/mfa/totp/confirm",
    response_model=RecoveryCodes,
    responses=responses(
        *AUTH_ERRORS,
        WrongCode,
        TotpState,
        RateLimited,
        ServiceUnavailable,
        body=True,
        validated=True,
        database=True,
    ),
)
async def confirm_totp(
    response: Response,
    body: TotpConfirmation,
    user: CurrentUser,
    context: Context,
    db: DbSession,
    now: Now,
    requester: CurrentRequester,
) -> RecoveryCodes:
    """The first right code from the app turns TOTP on: from now on a password alone
    logs in nobody. Answers the ten recovery codes, shown this once."""
    response.headers["Cache-Control"] = "no-store"
    codes = await service.confirm(db, context.codes, user, body.code, now=now, requester=requester)
    users.forget_profiles(db, context.profiles, user.id)
    return RecoveryCodes(recovery_codes=codes)


@router.delete(
    "/users/me/mfa/totp",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=responses(
        *AUTH_ERRORS,
        *STEP_UP_ERRORS,
        TotpState,
        ServiceUnavailable,
        body=True,
        validated=True,
        database=True,
    ),
)
async def disable_totp(
    request: Request,
    body: SensitiveChange,
    user: CurrentUser,
    caller: CurrentCaller,
    context: Context,
    db: DbSession,
    now: Now,
    requester: CurrentRequester,
) -> Response:
    """Turn TOTP off (the current password and a code or passkey asked). If it was the
    last second factor, the recovery codes go too, the other sessions end and a notice
    is mailed."""
    await service.disable(
        db,
        context.settings,
        step_up(context, request, body.current_password, body),
        user,
        session_id=caller.session_id,
        now=now,
        requester=requester,
    )
    users.forget_profiles(db, context.profiles, user.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/users/me/mfa/recovery-codes",
    response_model=RecoveryCodes,
    responses=responses(
        *AUTH_ERRORS,
        *STEP_UP_ERRORS,
        TotpState,
        ServiceUnavailable,
        body=True,
        validated=True,
        database=True,
    ),
)
async def new_recovery_codes(
    request: Request,
    response: Response,
    body: SensitiveChange,
    user: CurrentUser,
    context: Context,
    db: DbSession,
    now: Now,
    requester: CurrentRequester,
) -> RecoveryCodes:
    """A new set of ten recovery codes (the current password and a second factor
    asked); the old set stops working."""
    response.headers["Cache-Control"] = "no-store"
    codes = await service.new_recovery_codes(
        db,
        context.codes,
        step_up(context, request, body.current_password, body),
        user,
        now=now,
        requester=requester,
    )
    return RecoveryCodes(recovery_codes=codes)
