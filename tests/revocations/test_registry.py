"""The in-memory set of revoked sessions: membership, expiry, and its memory bound."""

from __future__ import annotations

import gc
import os
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta

from authapi.revocations.publish import parse_notification
from authapi.revocations.registry import CLOCK_SKEW_MARGIN, RevokedSessions

TTL = 300
T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
MiB = 1024 * 1024


def test_a_revoked_session_is_known_by_its_sid_claim() -> None:
    registry = RevokedSessions(TTL)
    revoked, other = uuid.uuid4(), uuid.uuid4()
    registry.add([revoked], T0)
    assert str(revoked) in registry
    assert str(other) not in registry


def test_entries_go_once_every_access_token_of_their_session_has_expired() -> None:
    registry = RevokedSessions(TTL)
    early, late = uuid.uuid4(), uuid.uuid4()
    registry.add([early], T0)
    registry.add([late], T0 + timedelta(seconds=60))
    keep_for = TTL + CLOCK_SKEW_MARGIN

    assert registry.drop_expired(T0 + timedelta(seconds=keep_for - 1)) == 0
    assert registry.drop_expired(T0 + timedelta(seconds=keep_for + 1)) == 1
    assert str(early) not in registry
    assert str(late) in registry
    assert registry.drop_expired(T0 + timedelta(seconds=keep_for + 61)) == 1
    assert len(registry) == 0


def test_an_entry_learnt_late_is_dropped_all_the_same() -> None:
    # A poll may bring an old revocation after younger ones arrived by notification.
    registry = RevokedSessions(TTL)
    young, old = uuid.uuid4(), uuid.uuid4()
    registry.add([young], T0 + timedelta(seconds=100))
    registry.add([old], T0)
    registry.drop_expired(T0 + timedelta(seconds=TTL + CLOCK_SKEW_MARGIN + 101))
    assert len(registry) == 0


def test_learning_a_session_twice_keeps_one_entry() -> None:
    registry = RevokedSessions(TTL)
    session_id = uuid.uuid4()
    registry.add([session_id], T0)
    registry.add([session_id], T0 + timedelta(seconds=5))
    assert len(registry) == 1


def test_a_million_revocations_in_one_lifetime_stay_under_128_mib() -> None:
    """The bound the README states: about 100 bytes per revoked session."""
    registry = RevokedSessions(TTL)
    count = 1_000_000
    # As `sid` claims: strings, from which the registry makes (and must count) its keys.
    sids = [str(uuid.UUID(bytes=os.urandom(16))) for _ in range(count)]
    gc.collect()
    tracemalloc.start()
    try:
        per_second = count // TTL
        for second in range(TTL):  # spread over one lifetime, as a flood would be
            chunk = sids[second * per_second : (second + 1) * per_second]
            registry.add(chunk, T0 + timedelta(seconds=second))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    added = count // TTL * TTL
    assert len(registry) == added
    assert peak < 128 * MiB, f"{peak / MiB:.0f} MiB"
    # And all of it goes once the last of those access tokens has expired.
    assert registry.drop_expired(T0 + timedelta(seconds=2 * TTL + CLOCK_SKEW_MARGIN)) == added
    assert len(registry) == 0


def test_notifications_yield_their_session_ids_and_skip_garbage() -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    payload = f"{first.hex} not-an-id {second.hex} {'f' * 33}"
    assert list(parse_notification(payload)) == [first, second]
