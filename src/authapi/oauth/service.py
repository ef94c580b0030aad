"""The OAuth 2.0 grants (RFC 6749 §4.3 password, §6 refresh) and revocation (RFC 7009):
users and sessions put together into token responses."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from authapi.context import AppContext
from authapi.errors import InvalidGrant, InvalidScope, InvalidToken
from authapi.oauth.schemas import TokenResponse
from authapi.sessions import service as sessions
from authapi.sessions.models import LoginSession
from authapi.sessions.service import RevokeReason, SessionPolicy
from authapi.tokens.access import AccessTokenSubject
from authapi.users import service as users
from authapi.users.models import User

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def session_policy(context: AppContext) -> SessionPolicy:
    settings = context.settings
    return SessionPolicy(
        idle_timeout=timedelta(seconds=settings.session_idle_timeout),
        max_lifetime=timedelta(seconds=settings.session_max_lifetime),
        reuse_grace=timedelta(seconds=settings.refresh_reuse_grace),
    )


def resolve_scope(requested: str | None, allowed: list[str]) -> str:
    """The scope to grant: `requested` if every token of it is allowed, all of `allowed`
    when nothing was asked for. Order follows `allowed`, so equal scopes read equal."""
    if requested is None or not requested.strip():
        return " ".join(allowed)
    tokens = requested.split(" ")
    if any(not _SCOPE_TOKEN.fullmatch(token) for token in tokens):
        raise InvalidScope("scope must be space-separated scope tokens")
    unknown = sorted(set(tokens) - set(allowed))
    if unknown:
        raise InvalidScope(f"unknown scope: {' '.join(unknown)}")
    return " ".join(scope for scope in allowed if scope in tokens)


def _token_response(
    context: AppContext, user: User, session: LoginSession, scope: str, now: datetime
) -> TokenResponse:
    subject = AccessTokenSubject(
        user_id=user.id, session_id=session.id, role=user.role, scope=scope
    )
    return TokenResponse(
        access_token=context.access_tokens.issue(subject, now),
        expires_in=context.access_tokens.ttl,
        refresh_token=context.refresh_tokens.encode(session.id, session.generation),
        scope=scope,
    )


async def password_grant(
    context: AppContext,
    db: AsyncSession,
    *,
    username: str,
    password: str,
    scope: str | None,
    now: datetime,
    user_agent: str | None,
    ip: str | None,
) -> TokenResponse:
    granted = resolve_scope(scope, context.settings.scopes)
    user = await users.authenticate(db, context.hasher, username=username, password=password)
    session = await sessions.create_session(
        db,
        session_policy(context),
        user_id=user.id,
        scope=granted,
        now=now,
        user_agent=user_agent,
        ip=ip,
    )
    return _token_response(context, user, session, granted, now)


async def refresh_grant(
    context: AppContext, db: AsyncSession, *, refresh_token: str, scope: str | None, now: datetime
) -> TokenResponse:
    presented = context.refresh_tokens.decode(refresh_token)
    if presented is None:
        raise InvalidGrant()
    session = await sessions.rotate(db, session_policy(context), presented, now)
    user = await users.get_user(db, session.user_id)
    if user is None or not user.is_active:
        raise InvalidGrant()
    # RFC 6749 §6: a refresh may narrow the scope of the new access token, never widen it.
    granted = session.scope
    if scope is not None and scope.strip():
        granted = resolve_scope(scope, session.scope.split(" "))
    return _token_response(context, user, session, granted, now)


async def revoke_refresh_token(
    context: AppContext, db: AsyncSession, token: str, reason: str, now: datetime
) -> bool:
    """End the session of any genuine refresh token of it, current or rotated."""
    presented = context.refresh_tokens.decode(token)
    if presented is None:
        return False
    return await sessions.revoke(db, presented.session_id, reason, now)


async def revoke_token(context: AppContext, db: AsyncSession, *, token: str, now: datetime) -> None:
    """RFC 7009: a refresh token ends its session; so does one of our access tokens
    (§2.1 allows revoking the related refresh token). Anything else is ignored."""
    if await revoke_refresh_token(context, db, token, RevokeReason.REVOKED, now):
        return
    try:
        claims = context.access_tokens.verify(token)
    except InvalidToken:
        return
    await sessions.revoke(db, uuid.UUID(claims["sid"]), RevokeReason.REVOKED, now)
