"""A bounded map whose values each expire at their own deadline."""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class ExpiringCache(Generic[K, V]):
    """At most `max_entries` values, each until its deadline (a `time.time()` instant).
    When full, expired values go first, then the oldest insertion."""

    def __init__(self, max_entries: int) -> None:
        self._max_entries = max_entries
        self._entries: dict[K, tuple[float, V]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K, now: float) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: K, value: V, expires_at: float, now: float) -> None:
        if key not in self._entries and len(self._entries) >= self._max_entries:
            self._make_room(now)
        self._entries[key] = (expires_at, value)

    def clear(self) -> None:
        self._entries.clear()

    def _make_room(self, now: float) -> None:
        expired = [key for key, (deadline, _) in self._entries.items() if deadline <= now]
        for key in expired:
            del self._entries[key]
        if len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]
