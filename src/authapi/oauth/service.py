"""The OAuth 2.0 grants (RFC 6749 §4.3 password, §6 refresh) and revocation (RFC 7009):
users and sessions put together into token responses."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authapi import auth_methods
from authapi.audit import service as audit
from authapi.client_address import Requester
from authapi.db import transaction
from authapi.errors import (
    AuthenticationRequired,
    InvalidGrant,
    LoginFailed,
    RateLimited,
    RefreshTokenReused,
)
from authapi.mfa import second_factor
from authapi.mfa.tokens import MfaTokenKey
from authapi.oauth.issuing import Issued, TokenIssuer, log_in, refuse_unverified, resolve_scope
from authapi.ratelimit.refusals import admit_password_attempt, audit_refusal
from authapi.ratelimit.service import SESSION_LIMIT, RateLimiter, account_key
from authapi.sessions import rotation
from authapi.sessions import service as sessions
from authapi.sessions.models import RevokeReason
from authapi.sessions.one_trip import OneTripRotation
from authapi.sessions.service import SessionPolicy
from authapi.users import service as users
from authapi.users.passwords import PasswordHasher


async def password_grant(
    db: AsyncSession,
    *,
    issuer: TokenIssuer,
    policy: SessionPolicy,
    hasher: PasswordHasher,
    limiter: RateLimiter,
    allowed_scopes: list[str],
    username: str,
    password: str,
    scope: str | None,
    now: datetime,
    requester: Requester,
    mfa_keys: MfaTokenKey,
    device_cookie: str | None = None,
    require_verified_email: bool = False,
) -> Issued:
    granted = resolve_scope(scope, allowed_scopes)
    account = users.login_name(username)
    # Counted before the hash is verified, so concurrent guesses cannot overtake it.
    await admit_password_attempt(
        db,
        limiter,
        account,
        audit_key=account_key(account),  # a digest: the storage holds no addresses
        user_id=lambda: users.id_for_email(db, account),
        now=now,
        requester=requester,
        device_cookie=device_cookie,
    )
    try:
        user = await users.authenticate(db, hasher, email=account, password=password)
    except LoginFailed as exc:
        audit.record(db, audit.Event.LOGIN_FAILED, at=now, requester=requester, user_id=exc.user_id)
        raise
    # Only after the right password: it tells the owner, and nobody else, why.
    refuse_unverified(db, user, required=require_verified_email, now=now, requester=requester)
    amr = (auth_methods.PASSWORD,)
    if user.mfa_enabled:
        # Only after the right password, so a wrong one never tells that MFA is on.
        await second_factor.challenge(
            db, mfa_keys, user_id=user.id, scope=granted, amr=amr, now=now, requester=requester
        )
    issued = await log_in(
        db, issuer, policy, user, scope=granted, amr=amr, now=now, requester=requester
    )
    return replace(issued, device_cookie=limiter.device_cookie(account, device_cookie))


async def refresh_grant(
    maker: async_sessionmaker[AsyncSession],
    *,
    issuer: TokenIssuer,
    policy: SessionPolicy,
    limiter: RateLimiter,
    refresh_token: str,
    scope: str | None,
    now: datetime,
    requester: Requester,
    one_trip: OneTripRotation | None = None,
) -> Issued:
    """`one_trip` (PostgreSQL) answers the common case in one statement of its own; the
    rest, and every refresh on SQLite, is rotated in a transaction of its own, opened
    only then (an unused ORM session and its commit cost a refresh ~0.3 ms)."""
    presented = issuer.refresh_tokens.decode(refresh_token)
    if presented is None:
        raise InvalidGrant()  # forged: costs nothing, counts against no session
    await _limit_session(limiter, maker, presented.session_id, now=now, requester=requester)
    # RFC 6749 §6: a refresh may narrow the scope of the new access token, never widen
    # it. A scope that does not fit must leave the session as it was: that is checked in
    # the general way's transaction, which the refusal rolls back.
    narrowed = scope is not None and bool(scope.strip())
    rotated = None
    if one_trip is not None and not narrowed:
        rotated = await one_trip.advance(policy, presented, now, requester)
    if rotated is not None:
        granted = rotated.scope
    else:
        async with transaction(maker) as db:
            rotated = await _rotate(db, policy, presented, now, requester)
            granted = resolve_scope(scope, rotated.scope.split(" ")) if narrowed else rotated.scope
    if rotated.role is None:  # _rotate refuses a user who is gone; one_trip finds none
        raise InvalidGrant()
    return issuer.issue(
        user_id=rotated.user_id,
        role=rotated.role,
        session_id=rotated.session_id,
        generation=rotated.generation,
        session_expires_at=rotated.expires_at,
        scope=granted,
        amr=auth_methods.from_column(rotated.amr),
        now=now,
    )


async def _rotate(
    db: AsyncSession,
    policy: SessionPolicy,
    presented: rotation.RefreshTokenClaims,
    now: datetime,
    requester: Requester,
) -> rotation.Rotation:
    """The general way: the rotation in `db`'s transaction, with reuse detection and
    the grace window, and the refresh's audit row."""
    try:
        rotated = await rotation.rotate(db, policy, presented, now)
    except RefreshTokenReused as exc:
        audit.record(
            db,
            audit.Event.REUSE_DETECTED,
            at=now,
            requester=requester,
            user_id=exc.user_id,
            session_id=presented.session_id,
        )
        raise
    if not rotated.user_active or rotated.role is None:
        raise InvalidGrant()  # the transaction rolls the rotation back
    await audit.insert_now(
        db,
        audit.Event.REFRESH,
        at=now,
        requester=requester,
        user_id=rotated.user_id,
        session_id=rotated.session_id,
    )
    return rotated


async def _limit_session(
    limiter: RateLimiter,
    maker: async_sessionmaker[AsyncSession],
    session_id: uuid.UUID,
    *,
    now: datetime,
    requester: Requester,
) -> None:
    """Count a refresh against its session's limit. The refusal is recorded in a
    transaction of its own (once a minute per session): the request's rolls back."""
    try:
        await limiter.check_session(str(session_id))
    except RateLimited:
        await audit_refusal(
            limiter,
            maker,
            SESSION_LIMIT,
            str(session_id),
            now=now,
            requester=requester,
            session_id=session_id,
        )
        raise


async def logout(
    db: AsyncSession,
    issuer: TokenIssuer,
    *,
    refresh_token: str | None,
    access_token: str | None,
    now: datetime,
    requester: Requester,
) -> None:
    """End the session of the refresh token, else of the bearer access token. An
    unknown refresh token ends nothing and is no error: the client is logged out."""
    if refresh_token:
        presented = issuer.refresh_tokens.decode(refresh_token)
        if presented is None:
            return
        target = presented.session_id
    elif access_token:
        target = issuer.session_of_access_token(access_token)
    else:
        raise AuthenticationRequired()
    await sessions.end_session(
        db,
        target,
        reason=RevokeReason.LOGOUT,
        event=audit.Event.LOGOUT,
        now=now,
        requester=requester,
    )


async def revoke_token(
    db: AsyncSession, issuer: TokenIssuer, *, token: str, now: datetime, requester: Requester
) -> None:
    """RFC 7009: a refresh token ends its session; so does one of our access tokens
    (§2.1 allows revoking the related refresh token). Anything else is ignored."""
    session_id = issuer.session_of(token)
    if session_id is not None:
        await sessions.end_session(
            db,
            session_id,
            reason=RevokeReason.REVOKED,
            event=audit.Event.REVOKE,
            now=now,
            requester=requester,
        )
