"""A bounded map whose values each expire at their own deadline."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class ExpiringCache(Generic[K, V]):
    """At most `max_entries` values, each until its deadline (a `time.time()` instant).

    Expired values are dropped as time passes, not only when the cache is full: each
    `put` first drops those whose deadline has come, taken from a heap of deadlines, so
    memory follows the number of live values (a cache that only ever filled up held
    `max_entries` values long dead). A `get` stays one dict lookup; a `put` costs a heap
    push, and each value is popped once. When full of live values, the one that would
    expire first goes.
    """

    def __init__(self, max_entries: int) -> None:
        self._max_entries = max_entries
        self._entries: dict[K, tuple[float, V]] = {}
        # (deadline, insertion number, key); the number keeps keys from being compared.
        # An item whose key was dropped or put again since is stale, and skipped.
        self._deadlines: list[tuple[float, int, K]] = []
        self._insertions = itertools.count()

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
        self._drop_expired(now)
        if key not in self._entries and len(self._entries) >= self._max_entries:
            self._drop_first_to_expire()
        self._entries[key] = (expires_at, value)
        heapq.heappush(self._deadlines, (expires_at, next(self._insertions), key))
        if len(self._deadlines) > 2 * len(self._entries) + 64:
            self._compact()

    def discard_if(self, matches: Callable[[V], bool]) -> None:
        """Drop every value `matches` holds true of: a scan, for rare changes only."""
        for key in [key for key, (_, value) in self._entries.items() if matches(value)]:
            del self._entries[key]

    def clear(self) -> None:
        self._entries.clear()
        self._deadlines.clear()

    def _drop_expired(self, now: float) -> None:
        while self._deadlines and self._deadlines[0][0] <= now:
            self._pop_first_deadline()

    def _drop_first_to_expire(self) -> None:
        while self._deadlines and not self._pop_first_deadline():
            pass

    def _pop_first_deadline(self) -> bool:
        """Drop the value of the earliest deadline, unless that item is stale."""
        deadline, _, key = heapq.heappop(self._deadlines)
        entry = self._entries.get(key)
        if entry is None or entry[0] != deadline:
            return False
        del self._entries[key]
        return True

    def _compact(self) -> None:
        # Stale items pile up only when live keys are put again; rebuilding then, from
        # the live entries alone, keeps the heap within twice their number (amortised).
        self._deadlines = [
            (deadline, next(self._insertions), key) for key, (deadline, _) in self._entries.items()
        ]
        heapq.heapify(self._deadlines)
