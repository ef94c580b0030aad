"""What the app builds once at start-up and every request uses."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from authapi.clock import Clock
from authapi.config import Settings
from authapi.ratelimit.service import RateLimiter
from authapi.sessions.refresh_tokens import RefreshTokenCodec
from authapi.tokens.access import AccessTokens
from authapi.users.passwords import PasswordHasher


@dataclass
class AppContext:
    settings: Settings
    clock: Clock
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    hasher: PasswordHasher
    access_tokens: AccessTokens
    refresh_tokens: RefreshTokenCodec
    rate_limiter: RateLimiter
