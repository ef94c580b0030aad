"""What every grant that hands out tokens shares: the scope to grant, the rule on
unverified addresses, and a completed login (its session, audit record and tokens);
the `TokenIssuer` that makes token pairs and tells their session."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from authapi.access_tokens.service import AccessTokens, AccessTokenSubject, Caller
from authapi.audit import service as audit
from authapi.auth_methods import AuthMethods
from authapi.client_address import Requester
from authapi.errors import EmailNotVerified, InvalidScope, InvalidToken
from authapi.oauth.schemas import TokenResponse
from authapi.sessions import service as sessions
from authapi.sessions.rotation import RefreshTokenCodec
from authapi.sessions.service import SessionPolicy
from authapi.users.models import User

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


def refuse_unverified(
    db: AsyncSession, user: User, *, required: bool, now: datetime, requester: Requester
) -> None:
    """Refuse (and record) the login of an unverified address while
    AUTHAPI_REQUIRE_VERIFIED_EMAIL is on; call it once the credentials are proven."""
    if required and not user.email_verified:
        audit.record(
            db,
            audit.Event.LOGIN_FAILED,
            at=now,
            requester=requester,
            user_id=user.id,
            detail="email_not_verified",
        )
        raise EmailNotVerified()


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
