"""Rate limits on top of the `limits` library (moving windows, memory or Redis storage).

Three kinds:
- per client address, on the endpoints anyone can call without a token (IPv6 clients
  by their /64, which one subscriber usually holds whole);
- per refresh-token session, on refreshes: an office or a mobile carrier behind one
  address must not share one budget of cheap refreshes;
- on password attempts, counted *before* the hash is verified (a concurrent burst of
  guesses cannot slip past a counter that is only read first), in two layers:
  - per (account, client): the client is a known device (ratelimit/devices.py) when
    it presents a valid device cookie for the account, else its address. An attacker
    failing from elsewhere uses up only their own bucket, so the owner still logs in;
  - per account, much looser (ASVS 2.2.1): past it, nobody logs in to that account
    until the window has moved on, which bounds guessing from many addresses.
  Every attempt counts, a success too: refunding one would reopen the race. Unknown
  emails are counted the same way, so the throttle tells nothing about who exists.

If the storage (Redis) fails or does not answer within `AUTHAPI_RATE_LIMIT_STORAGE_
TIMEOUT`, requests are refused with 503 rather than let through unlimited: the limits
are a security control, not a nicety.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
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
from authapi.ratelimit.devices import DeviceCookies

logger = logging.getLogger(__name__)

# The per-client-address limits, by the name routes use (also their metric label).
ADDRESS_LIMITS = {
    "token": "rate_limit_token",
    "refresh": "rate_limit_refresh_address",
    "register": "rate_limit_register",
    "revoke": "rate_limit_revoke",
    "mail": "rate_limit_mail_address",  # every endpoint that sends mail
}
# The other limits' metric labels.
LOGIN_LIMIT = "login_failures"  # per (account, device or address)
ACCOUNT_LIMIT = "login_account"  # per account
SESSION_LIMIT = "refresh_session"  # per refresh-token session
RECIPIENT_LIMIT = "mail_recipient"  # per address mail is sent to
OTP_LIMIT = "otp"  # second-factor codes per account
OTHER_LIMITS = (LOGIN_LIMIT, ACCOUNT_LIMIT, SESSION_LIMIT, RECIPIENT_LIMIT, OTP_LIMIT)

_IPV6_SUBSCRIBER_PREFIX = 64


def account_key(email: str) -> str:
    # Counters are keyed by a digest, so the limiter's storage holds no email addresses.
    return hashlib.sha256(email.encode()).hexdigest()


def address_key(address: str) -> str:
    """What an address is counted as: itself, or for IPv6 its /64, since a subscriber
    can pick any address of theirs."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, _IPV6_SUBSCRIBER_PREFIX), strict=False))
    return str(ip)


class RateLimiter:
    def __init__(self, settings: Settings, devices: DeviceCookies) -> None:
        self.enabled = settings.rate_limit_enabled
        self.devices = devices
        self._timeout = settings.rate_limit_storage_timeout
        url = settings.rate_limit_storage.removeprefix("async+")
        options: dict[str, Any] = {}
        self._redis_pool: coredis.ConnectionPool | None = None
        if url.startswith("redis"):
            # Our own pool, so that shutdown can close its connections, and so that a
            # hung server fails each call after the timeout instead of holding it.
            self._redis_pool = coredis.ConnectionPool.from_url(
                url, stream_timeout=self._timeout, connect_timeout=self._timeout
            )
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
        self._login_account = limits.parse(settings.rate_limit_login_account)
        self._refresh_session = limits.parse(settings.rate_limit_refresh)
        self._mail_recipient = limits.parse(settings.rate_limit_mail_recipient)
        self._otp = limits.parse(settings.rate_limit_otp)
        self._one_a_minute = limits.parse("1/minute")

    async def _wait(self, item: limits.RateLimitItem, *key: str, count: bool) -> int | None:
        """Seconds until `key` is within `item` again, or None if it is within it now.
        With `count`, this request is counted (atomically: test and count are one)."""
        if not self.enabled:
            return None
        try:
            # The pool's timeouts bound each Redis round trip; this bounds the whole,
            # whatever the storage does (reconnects, a script load, a full pool).
            async with asyncio.timeout(self._timeout * 2):
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
        wait = await self._wait(self._address_limits[name], name, address_key(address), count=True)
        if wait is not None:
            metrics.count_rate_limited(name)
            raise RateLimited(retry_after=wait)

    async def admit_password_attempt(
        self, account: str, *, address: str, device_cookie: str | None
    ) -> None:
        """Count one password attempt on `account` before it is verified; raise
        AccountThrottled if the client's bucket or the account's cap is used up.
        A refused attempt counts against the account's cap no more."""
        digest = account_key(account)
        device = self.devices.device_of(device_cookie, account)
        client = ("device", device) if device else ("address", address_key(address))
        wait = await self._wait(self._login_failures, "login", digest, *client, count=True)
        if wait is not None:
            metrics.count_rate_limited(LOGIN_LIMIT)
            raise AccountThrottled(retry_after=wait, limit=LOGIN_LIMIT)
        wait = await self._wait(self._login_account, "login-account", digest, count=True)
        if wait is not None:
            metrics.count_rate_limited(ACCOUNT_LIMIT)
            raise AccountThrottled(retry_after=wait, limit=ACCOUNT_LIMIT)

    async def admit_otp_attempt(self, user_id: str) -> None:
        """Count one second-factor code of the account before it is checked; raise
        AccountThrottled if its budget is used up (apart from the password limits: a
        right password must not buy more guesses at the code)."""
        wait = await self._wait(self._otp, "otp", user_id, count=True)
        if wait is not None:
            metrics.count_rate_limited(OTP_LIMIT)
            raise AccountThrottled(retry_after=wait, limit=OTP_LIMIT)

    def device_cookie(self, account: str, presented: str | None) -> str:
        """The device cookie to set after a successful password grant: the client's
        own device id if it had a valid cookie for this account, else a new one."""
        return self.devices.issue(account, self.devices.device_of(presented, account))

    async def check_session(self, session_id: str) -> None:
        """Count one refresh of the session; raise if over its limit."""
        wait = await self._wait(self._refresh_session, "refresh-session", session_id, count=True)
        if wait is not None:
            metrics.count_rate_limited(SESSION_LIMIT)
            raise RateLimited(retry_after=wait)

    async def check_recipient(self, email: str) -> None:
        """Count one mail to `email` (whether or not an account has it); raise if over
        the limit, so that no mailbox can be flooded from any number of addresses."""
        wait = await self._wait(
            self._mail_recipient, "mail-recipient", account_key(email), count=True
        )
        if wait is not None:
            metrics.count_rate_limited(RECIPIENT_LIMIT)
            raise RateLimited(retry_after=wait)

    async def first_refusal(self, name: str, key: str) -> bool:
        """True once a minute per limit and key: how often a refusal is worth an audit
        row. A flood of refused requests must not become a flood of database writes."""
        return await self._wait(self._one_a_minute, "refusal", name, key, count=True) is None

    def close(self) -> None:
        if self._redis_pool is not None:
            self._redis_pool.disconnect()
