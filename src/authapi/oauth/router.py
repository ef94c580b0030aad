"""The token endpoints of the contract: /token, /refresh, /revoke, /logout, and the
RFC 8414 metadata document."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Form, Request, Response, status

from authapi.dependencies import Context, DbSession, Now
from authapi.errors import (
    NO_STORE,
    AuthenticationRequired,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidToken,
    UnsupportedGrantType,
    responses,
)
from authapi.oauth import service
from authapi.oauth.schemas import (
    LogoutRequest,
    RefreshRequest,
    RevokeForm,
    ServerMetadata,
    TokenForm,
    TokenResponse,
)
from authapi.sessions import service as sessions
from authapi.sessions.service import RevokeReason
from authapi.tokens.dependencies import bearer

router = APIRouter(tags=["tokens"])

TOKEN_ERRORS = responses(InvalidRequest, InvalidGrant, UnsupportedGrantType, InvalidScope)


def _no_store(response: Response) -> None:
    response.headers.update(NO_STORE)


async def _refuse_repeated(request: Request, names: tuple[str, ...]) -> None:
    # RFC 6749 §3.1/§3.2: parameters must not be included more than once.
    form = await request.form()
    for name in names:
        if len(form.getlist(name)) > 1:
            raise InvalidRequest(f"{name} is repeated")


@router.post("/token", response_model=TokenResponse, responses=TOKEN_ERRORS)
async def token(
    request: Request,
    response: Response,
    context: Context,
    db: DbSession,
    now: Now,
    form: Annotated[TokenForm, Form()],
) -> TokenResponse:
    """RFC 6749 token endpoint: `grant_type=password` (first-party clients) or
    `grant_type=refresh_token`, form-encoded."""
    await _refuse_repeated(request, tuple(TokenForm.model_fields))
    _no_store(response)
    if not form.grant_type:
        raise InvalidRequest("grant_type is required")
    if form.grant_type == "password":
        if not form.username or form.password is None:
            raise InvalidRequest("username and password are required")
        return await service.password_grant(
            context,
            db,
            username=form.username,
            password=form.password,
            scope=form.scope,
            now=now,
            user_agent=request.headers.get("user-agent"),
            ip=request.client.host if request.client else None,
        )
    if form.grant_type == "refresh_token":
        if not form.refresh_token:
            raise InvalidRequest("refresh_token is required")
        return await service.refresh_grant(
            context, db, refresh_token=form.refresh_token, scope=form.scope, now=now
        )
    raise UnsupportedGrantType()


@router.post("/refresh", response_model=TokenResponse, responses=TOKEN_ERRORS)
async def refresh(
    response: Response,
    context: Context,
    db: DbSession,
    now: Now,
    body: Annotated[RefreshRequest | None, Body()] = None,
) -> TokenResponse:
    """Rotate a refresh token (JSON body): a new access token and a new refresh token."""
    _no_store(response)
    if body is None:
        raise InvalidRequest("refresh_token is required")
    return await service.refresh_grant(
        context, db, refresh_token=body.refresh_token, scope=None, now=now
    )


@router.post(
    "/revoke",
    status_code=status.HTTP_200_OK,
    response_class=Response,
    responses=responses(InvalidRequest),
)
async def revoke(
    request: Request, context: Context, db: DbSession, now: Now, form: Annotated[RevokeForm, Form()]
) -> Response:
    """RFC 7009 revocation. Answers 200 for unknown tokens too, so it tells nothing."""
    await _refuse_repeated(request, tuple(RevokeForm.model_fields))
    if not form.token:
        raise InvalidRequest("token is required")
    # The hint only speeds up the search (§2.1); both kinds are tried whatever it says.
    await service.revoke_token(context, db, token=form.token, now=now)
    return Response(status_code=status.HTTP_200_OK, headers=NO_STORE)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=responses(AuthenticationRequired, InvalidToken),
)
async def logout(
    context: Context,
    db: DbSession,
    now: Now,
    access_token: Annotated[str | None, Depends(bearer)],
    body: Annotated[LogoutRequest | None, Body()] = None,
) -> Response:
    """End the current session: the one of the refresh token in the body, else the one
    of the bearer access token."""
    if body is not None and body.refresh_token:
        await service.revoke_refresh_token(
            context, db, body.refresh_token, RevokeReason.LOGOUT, now
        )
    elif access_token:
        claims = context.access_tokens.verify(access_token)
        await sessions.revoke(db, uuid.UUID(claims["sid"]), RevokeReason.LOGOUT, now)
    else:
        raise AuthenticationRequired()
    return Response(status_code=status.HTTP_204_NO_CONTENT, headers=NO_STORE)


@router.get("/.well-known/oauth-authorization-server", response_model=ServerMetadata)
async def metadata(context: Context) -> ServerMetadata:
    issuer = context.settings.issuer
    return ServerMetadata(
        issuer=issuer,
        token_endpoint=f"{issuer}/token",
        jwks_uri=f"{issuer}/.well-known/jwks.json",
        revocation_endpoint=f"{issuer}/revoke",
        grant_types_supported=["password", "refresh_token"],
        # No authorization endpoint: nothing is issued from a front channel.
        response_types_supported=[],
        scopes_supported=context.settings.scopes,
        token_endpoint_auth_methods_supported=["none"],
        revocation_endpoint_auth_methods_supported=["none"],
        service_documentation=f"{issuer}/docs",
    )
