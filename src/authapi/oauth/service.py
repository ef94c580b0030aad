"""The OAuth 2.0 grants (RFC 6749 §4.3 password, §6 refresh) and revocation (RFC 7009):
users and sessions put together into token responses."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authapi import auth_methods
from authapi.access_tokens.service import AccessTokens, AccessTokenSubject, Caller
from authapi.audit import service as audit
from authapi.auth_methods import AuthMethods
from authapi.client_address import Requester
from authapi.errors import (
    AuthenticationRequired,
    EmailNotVerified,
    InvalidGrant,
    InvalidScope,
    InvalidToken,
    LoginFailed,
    RateLimited,
    RefreshTokenReused,
)
from authapi.mfa import second_factor
from authapi.mfa.tokens import MfaTokenKey
from authapi.oauth.schemas import TokenResponse
from authapi.ratelimit.refusals import admit_password_attempt, audit_refusal
from authapi.ratelimit.service import SESSION_LIMIT, RateLimiter, account_key
from authapi.sessions import rotation
from authapi.sessions import service as sessions
from authapi.sessions.models import RevokeReason
from authapi.sessions.rotation import RefreshTokenCodec
from authapi.sessions.service import SessionPolicy
from authapi.users import service as users
from authapi.users.models import User
from authapi.users.passwords import PasswordHasher

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


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


@dataclass(frozen=True)
class Issued:
    """A token response, and until when its session lasts (the refresh cookie's life);
    after a password grant, the device cookie to set (ratelimit/devices.py)."""

    tokens: TokenResponse
    session_expires_at: datetime
    device_cookie: str | None = None


@dataclass(frozen=True)
class TokenIssuer:
    """Issues token pairs (an access token and its session's refresh token), and tells
    which session a token of either kind belongs to."""

    access_tokens: AccessTokens
    refresh_tokens: RefreshTokenCodec

    def issue(
        self,
        *,
        user_id: uuid.UUID,
        role: str,
        session_id: uuid.UUID,
        generation: int,
        session_expires_at: datetime,
        scope: str,
        amr: AuthMethods,
        now: datetime,
    ) -> Issued:
        subject = AccessTokenSubject(
            user_id=user_id, session_id=session_id, role=role, scope=scope, amr=amr
        )
        tokens = TokenResponse(
            access_token=self.access_tokens.issue(subject, now),
            expires_in=self.access_tokens.ttl,
            refresh_token=self.refresh_tokens.encode(session_id, generation),
            scope=scope,
        )
        return Issued(tokens=tokens, session_expires_at=session_expires_at)

    def session_of_access_token(self, token: str) -> uuid.UUID:
        """The session of a valid access token of ours, else raises InvalidToken."""
        return Caller.from_claims(self.access_tokens.verify(token)).session_id

    def session_of(self, token: str) -> uuid.UUID | None:
        """The session of any genuine refresh token (current or rotated) or valid access
        token of ours; None for anything else."""
        presented = self.refresh_tokens.decode(token)
        if presented is not None:
            return presented.session_id
        try:
            return self.session_of_access_token(token)
        except InvalidToken:
            return None


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
    if require_verified_email and not user.email_verified:
        # Only after the right password: it tells the owner, and nobody else, why.
        audit.record(
            db,
            audit.Event.LOGIN_FAILED,
            at=now,
            requester=requester,
            user_id=user.id,
            detail="email_not_verified",
        )
        raise EmailNotVerified()
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


async def log_in(
    db: AsyncSession,
    issuer: TokenIssuer,
    policy: SessionPolicy,
    user: User,
    *,
    scope: str,
    amr: AuthMethods,
    now: datetime,
    requester: Requester,
    detail: str | None = None,
) -> Issued:
    """A completed login: its session, its audit record, its tokens."""
    session = await sessions.create_session(
        db,
        policy,
        user_id=user.id,
        scope=scope,
        amr=amr,
        now=now,
        user_agent=requester.user_agent,
        ip=requester.ip,
    )
    audit.record(
        db,
        audit.Event.LOGIN_SUCCEEDED,
        at=now,
        requester=requester,
        user_id=user.id,
        session_id=session.id,
        detail=detail,
    )
    return issuer.issue(
        user_id=user.id,
        role=user.role,
        session_id=session.id,
        generation=session.generation,
        session_expires_at=session.expires_at,
        scope=scope,
        amr=amr,
        now=now,
    )


async def refresh_grant(
    db: AsyncSession,
    *,
    issuer: TokenIssuer,
    policy: SessionPolicy,
    limiter: RateLimiter,
    maker: async_sessionmaker[AsyncSession],
    refresh_token: str,
    scope: str | None,
    now: datetime,
    requester: Requester,
) -> Issued:
    presented = issuer.refresh_tokens.decode(refresh_token)
    if presented is None:
        raise InvalidGrant()  # forged: costs nothing, counts against no session
    await _limit_session(limiter, maker, presented.session_id, now=now, requester=requester)
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
        raise InvalidGrant()
    # RFC 6749 §6: a refresh may narrow the scope of the new access token, never widen it.
    granted = rotated.scope
    if scope is not None and scope.strip():
        granted = resolve_scope(scope, rotated.scope.split(" "))
    await audit.insert_now(
        db,
        audit.Event.REFRESH,
        at=now,
        requester=requester,
        user_id=rotated.user_id,
        session_id=rotated.session_id,
    )
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
