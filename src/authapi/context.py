"""What the app builds once at start-up and every request uses."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from authapi.access_tokens.cache import VerifiedTokens
from authapi.access_tokens.service import AccessTokens
from authapi.clock import Clock
from authapi.config import Settings
from authapi.expiring import ExpiringCache
from authapi.mail.sender import MailSender
from authapi.mail.tokens import MailTokenKey
from authapi.mfa.codes import CodeChecker
from authapi.mfa.tokens import MfaTokenKey
from authapi.oauth.issuing import TokenIssuer
from authapi.passkeys.relying_party import RelyingParty
from authapi.ratelimit.service import RateLimiter
from authapi.revocations.feed import RevocationFeed
from authapi.revocations.registry import RevokedSessions
from authapi.sessions.one_trip import OneTripRotation
from authapi.sessions.rotation import RefreshTokenCodec
from authapi.sessions.service import SessionPolicy
from authapi.signing.reload import SigningKeyReloader
from authapi.users.passwords import PasswordHasher
from authapi.users.schemas import UserOut


@dataclass
class AppContext:
    settings: Settings
    clock: Clock
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    hasher: PasswordHasher
    access_tokens: AccessTokens
    refresh_tokens: RefreshTokenCodec
    # What the grants are handed: they never see the whole context.
    token_issuer: TokenIssuer
    session_policy: SessionPolicy
    rate_limiter: RateLimiter
    verified_tokens: VerifiedTokens
    # GET /users/me's answers, by session id (users.service.profile says why that is safe).
    profiles: ExpiringCache[str, UserOut]
    revoked_sessions: RevokedSessions
    revocation_feed: RevocationFeed
    signing_keys: SigningKeyReloader
    mail_sender: MailSender
    mail_tokens: MailTokenKey
    # The key-encryption key (signing/sealing.py): the signing keys' and the TOTP secrets'.
    kek: bytes
    # Second-factor codes (mfa/codes.py): TOTP and recovery codes.
    codes: CodeChecker
    # The MFA grant's mfa_tokens (mfa/tokens.py).
    mfa_tokens: MfaTokenKey
    # Passkeys' WebAuthn relying party; None where the RP ID would be an IP address.
    relying_party: RelyingParty | None = None
    # The common refresh in one statement (sessions/one_trip.py); PostgreSQL only.
    one_trip: OneTripRotation | None = None
