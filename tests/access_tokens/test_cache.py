"""The cache of verified access tokens: hits skip verification, and nothing in it
outlives its token or lets anything through that verification would refuse."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from authapi.access_tokens.cache import VerifiedTokens
from authapi.errors import InvalidToken


class CountingVerifier:
    """Stands in for AccessTokens.verify: tokens named "bad…" are invalid."""

    def __init__(self, lifetime: float = 300, now: Callable[[], float] = time.time) -> None:
        self.calls = 0
        self.lifetime = lifetime
        self.now = now

    def __call__(self, token: str) -> dict[str, Any]:
        self.calls += 1
        if token.startswith("bad"):
            raise InvalidToken()
        return {"sub": token, "exp": int(self.now() + self.lifetime)}


class MovableTime:
    """A `time.time` that tests move instead of sleeping."""

    def __init__(self) -> None:
        self.value = 1_800_000_000.0

    def __call__(self) -> float:
        return self.value


def test_a_token_is_verified_once_while_it_is_valid() -> None:
    verify = CountingVerifier()
    cache = VerifiedTokens(verify)
    first = cache.claims("a")
    assert cache.claims("a") == first
    assert verify.calls == 1


def test_an_invalid_token_is_verified_and_refused_every_time() -> None:
    verify = CountingVerifier()
    cache = VerifiedTokens(verify)
    for _ in range(3):
        with pytest.raises(InvalidToken):
            cache.claims("bad")
    assert verify.calls == 3
    assert len(cache) == 0


def test_an_expired_entry_is_verified_again() -> None:
    verify = CountingVerifier(lifetime=-1)  # already expired when cached
    cache = VerifiedTokens(verify)
    cache.claims("a")
    cache.claims("a")
    assert verify.calls == 2


def test_callers_get_copies() -> None:
    cache = VerifiedTokens(CountingVerifier())
    cache.claims("a")["sub"] = "mallory"
    assert cache.claims("a")["sub"] == "a"


def test_the_size_is_bounded_and_expired_entries_go_first() -> None:
    verify = CountingVerifier()
    cache = VerifiedTokens(verify, max_entries=3)
    for token in ("a", "b", "c", "d", "e"):
        cache.claims(token)
    assert len(cache) <= 3
    # The newest are kept.
    calls = verify.calls
    cache.claims("e")
    assert verify.calls == calls


def test_clear_forgets_everything() -> None:
    verify = CountingVerifier()
    cache = VerifiedTokens(verify)
    cache.claims("a")
    cache.clear()
    cache.claims("a")
    assert verify.calls == 2


def test_expired_tokens_are_dropped_before_the_cache_is_full() -> None:
    now = MovableTime()
    cache = VerifiedTokens(CountingVerifier(lifetime=5, now=now), now=now)
    for token in ("a", "b", "c"):
        cache.claims(token)
    now.value += 6  # all three have expired
    cache.claims("d")
    assert len(cache) == 1


def test_a_stream_of_short_lived_tokens_levels_off() -> None:
    # A new token every second, each valid for 5 s: the cache holds those still valid.
    now = MovableTime()
    cache = VerifiedTokens(CountingVerifier(lifetime=5, now=now), now=now)
    sizes = []
    for second in range(1_000):
        cache.claims(f"token-{second}")
        sizes.append(len(cache))
        now.value += 1
    assert max(sizes) <= 6
