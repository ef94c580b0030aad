"""The sessions revoked within the last access-token lifetime, by id, in memory.

An access token lives `ttl` seconds, so once a session was revoked longer ago than
that (plus a margin for clocks that disagree), every access token of it has expired
by itself and its entry can go. The set therefore only ever holds one lifetime's
worth of revocations, however many there were before.

Memory: a key is the session id as a 128-bit int (48 bytes) in a dict (about 40 bytes
a slot at its fullest); the deadlines are shared int objects, one per second. About
100 bytes per revoked session: 1,000,000 revocations within one lifetime stay under
128 MiB (tests/revocations/test_registry.py measures it).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from datetime import datetime

# Kept past the lifetime, for instances whose clocks are a little apart (the token's
# `iat` comes from the clock of the instance that issued it).
CLOCK_SKEW_MARGIN = 30


class RevokedSessions:
    def __init__(self, access_token_ttl: int) -> None:
        self._keep_for = access_token_ttl + CLOCK_SKEW_MARGIN
        # session id -> unix second after which its entry may go; in insertion order,
        # which is (nearly) deadline order, so expired entries are found at the front.
        self._drop_after: dict[int, int] = {}
        self._last_deadline = 0

    def __len__(self) -> int:
        return len(self._drop_after)

    def __contains__(self, session_id: str) -> bool:
        """Whether the session of an access token's `sid` claim (a UUID string, as
        verified by AccessTokens) was revoked."""
        return _key(session_id) in self._drop_after

    def add(self, session_ids: Iterable[uuid.UUID | str], revoked_at: datetime) -> None:
        deadline = math.ceil(revoked_at.timestamp()) + self._keep_for
        if deadline == self._last_deadline:
            deadline = self._last_deadline  # one int object per second, not per entry
        self._last_deadline = deadline
        entries = self._drop_after
        for session_id in session_ids:
            key = session_id.int if isinstance(session_id, uuid.UUID) else _key(session_id)
            # setdefault: a session learnt twice (notification and poll) keeps its place.
            entries.setdefault(key, deadline)

    def drop_expired(self, now: datetime) -> int:
        """Forget the sessions whose access tokens have all expired; returns how many."""
        now_second = int(now.timestamp())
        entries = self._drop_after
        expired = []
        for key, deadline in entries.items():
            if deadline > now_second:
                # Entries learnt late (a poll catching up) may sit behind younger ones;
                # they go when the front reaches them, one lifetime after they came.
                break
            expired.append(key)
        for key in expired:
            del entries[key]
        return len(expired)


def _key(session_id: str) -> int:
    return int(session_id.replace("-", ""), 16)
