"""The token endpoints of the contract: /token, /refresh, /revoke, /logout, and the
RFC 8414 metadata document."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Form, Request, Response, status

from authapi.access_tokens.dependencies import bearer
from authapi.client_address import identify_requester
from authapi.config import Settings
from authapi.dependencies import Context, CurrentRequester, DbSession, Now, app_context
from authapi.error_bodies import NO_STORE, responses
from authapi.errors import (
    AuthenticationRequired,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidToken,
    MfaRequired,
    RateLimited,
    ServiceUnavailable,
    UnsupportedGrantType,
)
from authapi.oauth import browser, mfa_grant, service
from authapi.oauth.browser import CsrfRejected
from authapi.oauth.issuing import Issued
from authapi.oauth.schemas import (
    LogoutRequest,
    RefreshRequest,
    RevokeForm,
    ServerMetadata,
    TokenForm,
    TokenResponse,
)
from authapi.passkeys.login import PASSKEY_GRANT, passkey_grant
from authapi.ratelimit.dependencies import (
    enforce_address_limit,
    limit_by_address,
    read_device_cookie,
    set_device_cookie,
)

router = APIRouter(tags=["oauth"])

TOKEN_ERRORS = (
    InvalidRequest,
    InvalidGrant,
    MfaRequired,
    UnsupportedGrantType,
    InvalidScope,
    RateLimited,
    ServiceUnavailable,
)


def _no_store(response: Response) -> None:
    response.headers.update(NO_STORE)


async def _refuse_null_body(request: Request, body: object) -> None:
    # FastAPI reads a JSON `null` as no body at all; the document (openapi.py) allows
    # the object or nothing, so that a `null` cannot pass for "use the cookie".
    if body is None and await request.body():
        raise InvalidRequest("The body must be a JSON object, or left out.")


async def _refuse_repeated(request: Request, names: tuple[str, ...]) -> None:
    # RFC 6749 §3.1/§3.2: parameters must not be included more than once.
    form = await request.form()
    for name in names:
        if len(form.getlist(name)) > 1:
            raise InvalidRequest(f"{name} is repeated")


def _deliver(
    issued: Issued,
    request: Request,
    response: Response,
    settings: Settings,
    now: datetime,
) -> TokenResponse:
    """The token response; in browser mode (the route has checked the request's
    origin) the refresh token goes into the cookie instead."""
    if not browser.wants_cookie(request):
        return issued.tokens
    refresh_token = issued.tokens.refresh_token
    assert refresh_token is not None  # noqa: S101 - every grant issues one
    browser.set_cookie(response, settings, refresh_token, issued.session_expires_at, now)
    return issued.tokens.model_copy(update={"refresh_token": None})


@router.post(
    "/token",
    response_model=TokenResponse,
    response_model_exclude_none=True,
    responses=responses(*TOKEN_ERRORS, body=True, database=True),
)
async def token(
    request: Request,
    response: Response,
    context: Context,
    db: DbSession,
    now: Now,
    requester: CurrentRequester,
    form: Annotated[TokenForm, Form()],
) -> TokenResponse:
    """RFC 6749 token endpoint, form-encoded: `grant_type=password` (first-party
    clients), `grant_type=refresh_token`, or the second-factor grants:
    `urn:authapi:params:oauth:grant-type:mfa` (`mfa_token` from a 400 `mfa_required`
    answer of the password grant, and `otp`, a TOTP or recovery code, or `credential`,
    a passkey assertion) and `urn:authapi:params:oauth:grant-type:passkey`
    (`credential`). With `X-Token-Delivery: cookie` the refresh token goes into an
    HttpOnly cookie (browser mode)."""
    # Refreshes are cheap and limited per session: they must not use up the address's
    # login budget (an office or a carrier behind one address refreshes a lot).
    address_limit = "refresh" if form.grant_type == "refresh_token" else "token"
    await enforce_address_limit(context, requester, now, address_limit)
    await _refuse_repeated(request, tuple(TokenForm.model_fields))
    _no_store(response)
    if browser.wants_cookie(request):
        browser.check_same_site(request, context.settings)
    if not form.grant_type:
        raise InvalidRequest("grant_type is required")
    if form.grant_type == "password":
        if not form.username or form.password is None:
            raise InvalidRequest("username and password are required")
        issued = await service.password_grant(
            db,
            issuer=context.token_issuer,
            policy=context.session_policy,
            hasher=context.hasher,
            limiter=context.rate_limiter,
            allowed_scopes=context.settings.scopes,
            username=form.username,
            password=form.password,
            scope=form.scope,
            now=now,
            requester=requester,
            mfa_keys=context.mfa_tokens,
            device_cookie=read_device_cookie(request, context.settings),
            require_verified_email=context.settings.require_verified_email,
        )
        if issued.device_cookie is not None:
            set_device_cookie(response, context.settings, issued.device_cookie)
        return _deliver(issued, request, response, context.settings, now)
    if form.grant_type == PASSKEY_GRANT and context.relying_party is not None:
        if not form.credential:
            raise InvalidRequest("credential is required")
        issued = await passkey_grant(
            db,
            issuer=context.token_issuer,
            policy=context.session_policy,
            rp=context.relying_party,
            allowed_scopes=context.settings.scopes,
            credential=form.credential,
            scope=form.scope,
            now=now,
            requester=requester,
            require_verified_email=context.settings.require_verified_email,
        )
        return _deliver(issued, request, response, context.settings, now)
    if form.grant_type == mfa_grant.GRANT_TYPE:
        issued = await mfa_grant.grant(db, context, form, now=now, requester=requester)
        return _deliver(issued, request, response, context.settings, now)
    if form.grant_type == "refresh_token":
        if not form.refresh_token:
            raise InvalidRequest("refresh_token is required")
        issued = await service.refresh_grant(
            context.sessionmaker,
            issuer=context.token_issuer,
            policy=context.session_policy,
            limiter=context.rate_limiter,
            refresh_token=form.refresh_token,
            scope=form.scope,
            now=now,
            requester=requester,
            one_trip=context.one_trip,
        )
        return _deliver(issued, request, response, context.settings, now)
    raise UnsupportedGrantType()


@router.post(
    "/refresh",
    response_model=TokenResponse,
    response_model_exclude_none=True,
    responses=responses(*TOKEN_ERRORS, CsrfRejected, body=True, database=True),
)
async def refresh(
    request: Request,
    response: Response,
    body: Annotated[RefreshRequest | None, Body()] = None,
) -> TokenResponse:
    """Rotate a refresh token: a new access token and a new refresh token. The token
    comes in the JSON body, or, in browser mode (`X-Token-Delivery: cookie`, no body),
    from the refresh cookie, and the new one goes back into the cookie."""
    # What other routes take as dependencies (Context, Now, CurrentRequester and the
    # address limit), done here: FastAPI resolving four more dependencies per request
    # was a tenth of a refresh's CPU (docs/performance.md).
    context = app_context(request)
    now = context.clock.now()
    requester = identify_requester(request, context.settings.trusted_proxies)
    await enforce_address_limit(context, requester, now, "refresh")
    _no_store(response)
    await _refuse_null_body(request, body)
    if body is not None:
        refresh_token = body.refresh_token
        if browser.wants_cookie(request):
            browser.check_same_site(request, context.settings)
    else:
        cookie = browser.read_cookie(request, context.settings)
        if cookie is None:
            raise InvalidRequest("refresh_token is required (in the body, or the refresh cookie)")
        browser.check_same_site(request, context.settings)
        refresh_token = cookie
    # No DbSession dependency: the grant opens a transaction only when it needs one
    # (FastAPI's handling of a generator dependency, and an unused ORM session, were a
    # cost every refresh paid: docs/performance.md). It commits before the answer.
    issued = await service.refresh_grant(
        context.sessionmaker,
        issuer=context.token_issuer,
        policy=context.session_policy,
        limiter=context.rate_limiter,
        refresh_token=refresh_token,
        scope=None,
        now=now,
        requester=requester,
        one_trip=context.one_trip,
    )
    return _deliver(issued, request, response, context.settings, now)


@router.post(
    "/revoke",
    status_code=status.HTTP_200_OK,
    response_class=Response,
    responses=responses(InvalidRequest, RateLimited, body=True, database=True),
    dependencies=[limit_by_address("revoke")],
)
async def revoke(
    request: Request,
    context: Context,
    db: DbSession,
    now: Now,
    requester: CurrentRequester,
    form: Annotated[RevokeForm, Form()],
) -> Response:
    """RFC 7009 revocation. Answers 200 for unknown tokens too, so it tells nothing."""
    await _refuse_repeated(request, tuple(RevokeForm.model_fields))
    # The hint only speeds up the search (§2.1); both kinds are tried whatever it says.
    await service.revoke_token(
        db, context.token_issuer, token=form.token, now=now, requester=requester
    )
    return Response(status_code=status.HTTP_200_OK, headers=NO_STORE)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=responses(
        AuthenticationRequired,
        InvalidToken,
        RateLimited,
        CsrfRejected,
        body=True,
        validated=True,
        database=True,
    ),
    dependencies=[limit_by_address("revoke")],
)
async def logout(
    request: Request,
    context: Context,
    db: DbSession,
    now: Now,
    requester: CurrentRequester,
    access_token: Annotated[str | None, Depends(bearer)],
    body: Annotated[LogoutRequest | None, Body()] = None,
) -> Response:
    """End the current session: the one of the refresh token in the body, else of the
    refresh cookie (browser mode, which also clears the cookie), else of the bearer
    access token."""
    await _refuse_null_body(request, body)
    refresh_token = body.refresh_token if body else None
    cookie = browser.read_cookie(request, context.settings)
    if refresh_token is None and cookie is not None:
        browser.check_same_site(request, context.settings)
        refresh_token = cookie
    await service.logout(
        db,
        context.token_issuer,
        refresh_token=refresh_token,
        access_token=access_token,
        now=now,
        requester=requester,
    )
    response = Response(status_code=status.HTTP_204_NO_CONTENT, headers=NO_STORE)
    if cookie is not None or browser.wants_cookie(request):
        browser.clear_cookie(response, context.settings)
    return response


@router.get(
    "/.well-known/oauth-authorization-server",
    response_model=ServerMetadata,
    responses=responses(),
)
async def metadata(context: Context) -> ServerMetadata:
    issuer = context.settings.issuer
    return ServerMetadata(
        issuer=issuer,
        token_endpoint=f"{issuer}/token",
        jwks_uri=f"{issuer}/.well-known/jwks.json",
        revocation_endpoint=f"{issuer}/revoke",
        grant_types_supported=[
            "password",
            "refresh_token",
            # Not where passkeys are off (no RP ID: passkeys/relying_party.py).
            *([PASSKEY_GRANT] if context.relying_party is not None else []),
            mfa_grant.GRANT_TYPE,
        ],
        # RFC 8414 §2 makes this REQUIRED, and validators refuse it empty. There is no
        # authorization endpoint (none is advertised): "none" (OAuth 2.0 Multiple
        # Response Type Encoding Practices §4) is the one value that claims no token
        # or code is ever issued through a front channel.
        response_types_supported=["none"],
        scopes_supported=context.settings.scopes,
        token_endpoint_auth_methods_supported=["none"],
        revocation_endpoint_auth_methods_supported=["none"],
        service_documentation=f"{issuer}/docs",
    )
