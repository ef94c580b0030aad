"""Rate limits on top of the `limits` library (moving windows, memory or Redis storage).

Two kinds:
- per client address, on the endpoints anyone can call without a token;
- per account, on failed password attempts: past the limit an account accepts no
  password at all until the window has moved on (ASVS 2.2.1: at most 40 failures an
  hour at the default "10/15 minutes"). An attacker can keep an account throttled only
  while attacking, and never for longer than one window after they stop. Unknown
  emails are counted the same way, so the throttle tells nothing about who exists.

If the storage (Redis) fails, requests are refused with 503 rather than let through
unlimited: the limits are a security control, not a nicety.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import Any

import coredis
import limits
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from authapi import metrics
from authapi.config import Settings
from authapi.errors import AccountThrottled, RateLimited, ServiceUnavailable

logger = logging.getLogger(__name__)

# The per-client-address limits, by the name routes use.
ADDRESS_LIMITS = {
    "token": "rate_limit_token",
    "refresh": "rate_limit_refresh",
    "register": "rate_limit_register",
    "revoke": "rate_limit_revoke",
}


def account_key(email: str) -> str:
    # Counters are keyed by a digest, so the limiter's storage holds no email addresses.
    return hashlib.sha256(email.encode()).hexdigest()


class RateLimiter:
    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limit_enabled
        url = settings.rate_limit_storage.removeprefix("async+")
        options: dict[str, Any] = {}
        self._redis_pool: coredis.ConnectionPool | None = None
        if url.startswith("redis"):
            # Our own pool, so that shutdown can close its connections.
            self._redis_pool = coredis.ConnectionPool.from_url(url)
            options = {
                "connection_pool": self._redis_pool,
                "key_prefix": settings.rate_limit_key_prefix,
            }
        self._storage = storage_from_string(f"async+{url}", **options)
        self._strategy = MovingWindowRateLimiter(self._storage)
        self._address_limits = {
            name: limits.parse(getattr(settings, field)) for name, field in ADDRESS_LIMITS.items()
        }
        self._login_failures = limits.parse(settings.rate_limit_login_failures)
        self._one_a_minute = limits.parse("1/minute")

    async def _wait(self, item: limits.RateLimitItem, *key: str, count: bool) -> int | None:
        """Seconds until `key` is within `item` again, or None if it is within it now.
        With `count`, this request is counted."""
        if not self.enabled:
            return None
        try:
            within = await (self._strategy.hit if count else self._strategy.test)(item, *key)
            if within:
                return None
            stats = await self._strategy.get_window_stats(item, *key)
        except Exception as exc:  # noqa: BLE001 - any storage failure: refuse, don't open up
            logger.error("rate limit storage failed: %s", type(exc).__name__)
            raise ServiceUnavailable() from None
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def check_address(self, name: str, address: str) -> None:
        """Count one request of `address` against the limit `name`; raise if over it."""
        wait = await self._wait(self._address_limits[name], name, address, count=True)
        if wait is not None:
            metrics.count_rate_limited(name)
            raise RateLimited(retry_after=wait)

    async def check_account(self, account: str) -> None:
        """Raise if the account is throttled by its failed logins (counts nothing)."""
        key = ("login-failures", account_key(account))
        wait = await self._wait(self._login_failures, *key, count=False)
        if wait is not None:
            metrics.count_rate_limited("login_failures")
            raise AccountThrottled(retry_after=wait)

    async def record_failure(self, account: str) -> None:
        await self._wait(self._login_failures, "login-failures", account_key(account), count=True)

    async def first_refusal(self, name: str, key: str) -> bool:
        """True once a minute per limit and key: how often a refusal is worth an audit
        row. A flood of refused requests must not become a flood of database writes."""
        return await self._wait(self._one_a_minute, "refusal", name, key, count=True) is None

    def close(self) -> None:
        if self._redis_pool is not None:
            self._redis_pool.disconnect()
