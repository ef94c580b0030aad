"""The passkey endpoints: a logged-in user's registration, list and removal, and the
request options of a passkey login (the login itself is the passkey grant of /token)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request, Response, status

from authapi.access_tokens.dependencies import CurrentCaller
from authapi.dependencies import Context, CurrentRequester, DbSession, Now
from authapi.error_bodies import responses
from authapi.errors import (
    AuthenticationRequired,
    InvalidRequest,
    InvalidToken,
    NotFound,
    PasskeyNotRegistered,
    PasskeysUnavailable,
    PasskeyTaken,
    RateLimited,
    ServiceUnavailable,
    StepUpRequired,
    WrongPassword,
)
from authapi.mfa import tokens as mfa_tokens
from authapi.mfa.dependencies import step_up
from authapi.passkeys import login, registration, service
from authapi.passkeys.dependencies import CurrentRelyingParty, relying_party
from authapi.passkeys.schemas import (
    LoginOptionsRequest,
    PasskeyOut,
    PasskeyRegistration,
    PasskeyRemoval,
)
from authapi.ratelimit.dependencies import limit_by_address
from authapi.users.dependencies import CurrentUser

router = APIRouter(tags=["passkeys"])

AUTH_ERRORS = (AuthenticationRequired, InvalidToken)


@router.post(
    "/users/me/passkeys/options",
    responses=responses(*AUTH_ERRORS, PasskeysUnavailable, database=True),
)
async def creation_options(
    rp: CurrentRelyingParty, user: CurrentUser, db: DbSession, now: Now
) -> dict[str, Any]:
    """WebAuthn creation options (PublicKeyCredentialCreationOptionsJSON, for
    `PublicKeyCredential.parseCreationOptionsFromJSON`); their challenge works once,
    for five minutes. The caller's passkeys are in `excludeCredentials`."""
    return await registration.creation_options(db, rp, user, now=now)


@router.post(
    "/users/me/passkeys/step-up-options",
    responses=responses(*AUTH_ERRORS, PasskeysUnavailable, database=True),
)
async def step_up_options(
    rp: CurrentRelyingParty, user: CurrentUser, db: DbSession, now: Now
) -> dict[str, Any]:
    """WebAuthn request options for the caller's own passkeys, whose assertion is the
    `passkey` of a sensitive change (step-up); the challenge is bound to the caller."""
    return await login.request_options(db, rp, user_id=user.id, now=now)


@router.post(
    "/users/me/passkeys",
    status_code=status.HTTP_201_CREATED,
    response_model=PasskeyOut,
    responses=responses(
        *AUTH_ERRORS,
        InvalidRequest,
        PasskeyNotRegistered,
        PasskeyTaken,
        PasskeysUnavailable,
        body=True,
        validated=True,
        database=True,
    ),
)
async def register(
    body: PasskeyRegistration,
    rp: CurrentRelyingParty,
    user: CurrentUser,
    context: Context,
    db: DbSession,
    now: Now,
    requester: CurrentRequester,
) -> PasskeyOut:
    """Register a passkey: `credential` is the JSON of the new PublicKeyCredential
    (`toJSON()`), made from the options above; `name` is yours to choose."""
    passkey = await registration.register(
        db,
        rp,
        context.profiles,
        user,
        credential=body.credential,
        name=body.name,
        now=now,
        requester=requester,
    )
    return PasskeyOut.model_validate(passkey)


@router.get(
    "/users/me/passkeys",
    response_model=list[PasskeyOut],
    responses=responses(*AUTH_ERRORS, PasskeysUnavailable, database=True),
    # 404 where passkeys are off, as their other endpoints: how a client tells.
    dependencies=[Depends(relying_party)],
)
async def list_passkeys(user: CurrentUser, db: DbSession) -> list[PasskeyOut]:
    """The caller's passkeys, oldest first."""
    return [PasskeyOut.model_validate(p) for p in await service.list_passkeys(db, user.id)]


@router.delete(
    "/users/me/passkeys/{passkey_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=responses(
        *AUTH_ERRORS,
        InvalidRequest,
        WrongPassword,
        StepUpRequired,
        NotFound,
        RateLimited,
        ServiceUnavailable,
        body=True,
        validated=True,
        database=True,
    ),
)
async def remove(
    request: Request,
    passkey_id: uuid.UUID,
    body: PasskeyRemoval,
    user: CurrentUser,
    caller: CurrentCaller,
    context: Context,
    db: DbSession,
    now: Now,
    requester: CurrentRequester,
) -> Response:
    """Remove one of the caller's passkeys (404 for anyone else's): the current
    password asked again, and a second factor (this passkey or another, or a code). If
    it was the last factor, the other sessions end and a notice is mailed."""
    await service.remove(
        db,
        context.settings,
        context.profiles,
        step_up(context, request, body.current_password, body),
        user,
        passkey_id,
        session_id=caller.session_id,
        now=now,
        requester=requester,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/passkeys/options",
    responses=responses(
        InvalidRequest, PasskeysUnavailable, RateLimited, body=True, validated=True, database=True
    ),
    dependencies=[limit_by_address("token")],
)
async def request_options(
    rp: CurrentRelyingParty, context: Context, db: DbSession, now: Now, body: LoginOptionsRequest
) -> dict[str, Any]:
    """WebAuthn request options (PublicKeyCredentialRequestOptionsJSON) for a passkey
    login: `{}` for a login without a password (any passkey of this site), then
    `grant_type=urn:authapi:params:oauth:grant-type:passkey` at /token; or
    `{"mfa_token"}` for a passkey as the second factor after a password (that user's
    passkeys), then the MFA grant with `credential`."""
    if body.mfa_token is None:
        return await login.request_options(db, rp, user_id=None, now=now)
    user_id = await mfa_tokens.user_of(db, context.mfa_tokens, body.mfa_token, now=now)
    if user_id is None:
        raise InvalidRequest("The mfa_token is invalid, expired or used up.")
    return await login.request_options(db, rp, user_id=user_id, now=now)
