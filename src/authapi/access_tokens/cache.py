"""Claims of access tokens verified recently, by the exact token string.

A client sends the same access token with every request for its whole life, and
verifying it (parsing, the signature, the claims) is most of what an authenticated
request costs here. A token that verified once verifies again until its `exp`, so its
claims are kept until then: a hit costs one dict lookup. Only tokens that verified are
kept (so only our own, genuine tokens take room), at most MAX_ENTRIES of them, and
each is dropped once its token has expired; the revocation check runs on every request
after this, hit or miss.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from authapi.expiring import ExpiringCache

# About 1.5 KB each (the token and its claims): some 15 MB when full.
MAX_ENTRIES = 10_000

Claims = dict[str, Any]


class VerifiedTokens:
    """`now`: the clock of `exp`, `time.time` (which tests move instead of sleeping)."""

    def __init__(
        self,
        verify: Callable[[str], Claims],
        max_entries: int = MAX_ENTRIES,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._verify = verify
        self._now = now
        self._claims: ExpiringCache[str, Claims] = ExpiringCache(max_entries)

    def __len__(self) -> int:
        return len(self._claims)

    def claims(self, token: str) -> Claims:
        """The claims of a valid token (a copy: callers may change it), else raises
        what `verify` raises."""
        # The same clock and comparison as PyJWT's expiry check (no leeway).
        now = self._now()
        claims = self._claims.get(token, now)
        if claims is None:
            claims = self._verify(token)
            self._claims.put(token, claims, claims["exp"], now)
        return dict(claims)

    def clear(self) -> None:
        """Forget everything: for when the signing keys change."""
        self._claims.clear()
