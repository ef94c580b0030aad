"""The expiring map behind the caches of verified tokens and of profiles: values go
when their deadline comes, so memory follows the live values, not the busiest moment."""

from __future__ import annotations

from authapi.expiring import ExpiringCache


class TestExpiry:
    def test_a_value_is_kept_until_its_deadline(self) -> None:
        cache: ExpiringCache[str, int] = ExpiringCache(max_entries=10)
        cache.put("a", 1, expires_at=10, now=0)
        assert cache.get("a", now=9.9) == 1
        assert cache.get("a", now=10) is None

    def test_expired_values_are_dropped_before_the_cache_is_full(self) -> None:
        cache: ExpiringCache[int, int] = ExpiringCache(max_entries=10_000)
        for key in range(100):
            cache.put(key, key, expires_at=10, now=0)
        cache.put(100, 100, expires_at=20, now=10)
        assert len(cache) == 1

    def test_only_the_expired_values_are_dropped(self) -> None:
        cache: ExpiringCache[str, int] = ExpiringCache(max_entries=10)
        cache.put("soon", 1, expires_at=10, now=0)
        cache.put("later", 2, expires_at=30, now=0)
        cache.put("new", 3, expires_at=40, now=20)
        assert len(cache) == 2
        assert cache.get("later", now=20) == 2

    def test_a_steady_stream_of_short_lived_values_levels_off(self) -> None:
        # One new value a second, each living 5 s: never more than 5 or 6 at once.
        cache: ExpiringCache[int, int] = ExpiringCache(max_entries=10_000)
        sizes = []
        for second in range(2_000):
            cache.put(second, second, expires_at=second + 5, now=second)
            sizes.append(len(cache))
        assert max(sizes) <= 6

    def test_a_value_put_again_keeps_its_new_deadline(self) -> None:
        cache: ExpiringCache[str, int] = ExpiringCache(max_entries=10)
        cache.put("a", 1, expires_at=10, now=0)
        cache.put("a", 2, expires_at=30, now=5)
        cache.put("b", 3, expires_at=40, now=15)  # past the first deadline of "a"
        assert cache.get("a", now=15) == 2
        cache.put("c", 4, expires_at=50, now=30)
        assert cache.get("a", now=30) is None
        assert len(cache) == 2


class TestBound:
    def test_when_full_of_live_values_the_first_to_expire_goes(self) -> None:
        cache: ExpiringCache[str, int] = ExpiringCache(max_entries=2)
        cache.put("late", 1, expires_at=30, now=0)
        cache.put("early", 2, expires_at=10, now=0)
        cache.put("middle", 3, expires_at=20, now=0)
        assert len(cache) == 2
        assert cache.get("early", now=0) is None
        assert cache.get("late", now=0) == 1
        assert cache.get("middle", now=0) == 3

    def test_putting_live_keys_again_and_again_keeps_the_size(self) -> None:
        cache: ExpiringCache[str, int] = ExpiringCache(max_entries=2)
        for round_ in range(1_000):
            cache.put("a", round_, expires_at=100_000, now=round_)
            cache.put("b", round_, expires_at=100_000, now=round_)
        assert len(cache) == 2
        assert cache.get("a", now=1_000) == 999

    def test_clear_forgets_everything(self) -> None:
        cache: ExpiringCache[str, int] = ExpiringCache(max_entries=2)
        cache.put("a", 1, expires_at=10, now=0)
        cache.clear()
        assert cache.get("a", now=0) is None
        cache.put("b", 2, expires_at=10, now=0)
        assert len(cache) == 1
