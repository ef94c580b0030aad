"""The common refresh on PostgreSQL in one statement and one round trip: the session
advanced and its audit row written by one data-modifying CTE, sent by asyncpg itself
in autocommit.

Why: through SQLAlchemy's asyncio layer the refresh's four round trips (BEGIN, the
conditional UPDATE, the audit INSERT, COMMIT) cost about 1.5 ms of the server's CPU;
asyncpg sends this one statement in about 0.15 ms (docs/performance.md, profiles).

What it keeps: the one conditional UPDATE of `rotation.rotate`, so of concurrent
requests with one token exactly one advances the session; the audit row, written in
the same statement, so it exists if and only if the session advanced. It answers only
that common case. Everything else gets no row here and goes the general way
(`rotation.rotate` in the request's ORM transaction), which then decides: a token one
generation behind within the grace window, a replay (the session revoked), an expired
or revoked session, a disabled or deleted user (the UPDATE requires an active one
here, where the general way rolls its UPDATE back), and any error of the database or
the connection (that way then answers 503 as every request does).

The connection comes from the app's pool (the same pool, the same pooler settings:
behind PgBouncer asyncpg's statement cache is off and this is an unnamed statement,
one transaction, as transaction pooling requires).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import cast

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from authapi import metrics
from authapi.audit.service import Event
from authapi.client_address import Requester
from authapi.sessions.rotation import RefreshTokenClaims, Rotation
from authapi.sessions.service import SessionPolicy

logger = logging.getLogger(__name__)

# Bound once (the hot path), and so each outcome is exported from the start, at 0: a rate
# of "declined" or "failed" then reads 0, not "no data". How many refreshes take this
# way, and how many leave it and why, is what a team behind a pooler needs to know.
_ADVANCED = metrics.ONE_STATEMENT_REFRESHES.labels(outcome="advanced")
_DECLINED = metrics.ONE_STATEMENT_REFRESHES.labels(outcome="declined")
_FAILED = metrics.ONE_STATEMENT_REFRESHES.labels(outcome="failed")

# rotation._ADVANCE (and its RETURNING), plus: the user must be active, and the refresh's
# audit row (audit.service.insert_now's columns) goes in with it.
_ADVANCE_AND_RECORD = """
WITH advanced AS (
    UPDATE sessions
    SET generation = generation + 1,
        rotated_at = $3,
        last_used_at = $3,
        expires_at = LEAST(absolute_expires_at, $4)
    WHERE id = $1
      AND generation = $2
      AND revoked_at IS NULL
      AND expires_at > $3
      AND EXISTS (SELECT FROM users WHERE users.id = sessions.user_id AND users.is_active)
    RETURNING id, user_id, generation, scope, amr, expires_at,
              (SELECT role FROM users WHERE users.id = sessions.user_id) AS role
), recorded AS (
    INSERT INTO audit_events (at, event, user_id, session_id, ip, user_agent)
    SELECT $3, $7, user_id, id, $5, $6 FROM advanced
)
SELECT id, user_id, generation, scope, amr, expires_at, role FROM advanced
"""


class OneTripRotation:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def advance(
        self,
        policy: SessionPolicy,
        presented: RefreshTokenClaims,
        now: datetime,
        requester: Requester,
    ) -> Rotation | None:
        """The session advanced and its refresh recorded, both committed; None when this
        statement did not advance it (the general way then decides why)."""
        try:
            async with self._engine.connect() as connection:
                driver: asyncpg.Connection | None = None
                try:
                    raw = await connection.get_raw_connection()
                    driver = cast(asyncpg.Connection, raw.driver_connection)
                    row = await driver.fetchrow(
                        _ADVANCE_AND_RECORD,
                        presented.session_id,
                        presented.generation,
                        now,
                        now + policy.idle_timeout,
                        requester.ip,
                        requester.user_agent,
                        Event.REFRESH.value,
                    )
                except Exception:
                    # The connection's state is unknown: it goes, rather than back to the pool.
                    # Closed here first: when its server process is gone, SQLAlchemy's graceful
                    # close can fail and leave the socket open (a ResourceWarning, 1 run in 12).
                    if driver is not None:
                        driver.terminate()
                    await connection.invalidate()
                    raise
        except Exception as exc:  # noqa: BLE001 - whatever it was, the general way answers
            # (and a test makes sure this way is taken: tests/sessions/test_one_trip.py)
            logger.debug("one-trip refresh failed (%r): the general way answers", exc)
            _FAILED.inc()
            return None
        if row is None:
            _DECLINED.inc()
            return None
        metrics.REFRESHES.inc()  # committed already: no transaction to wait for
        _ADVANCED.inc()
        return Rotation(
            session_id=row["id"],
            user_id=row["user_id"],
            generation=row["generation"],
            scope=row["scope"],
            amr=row["amr"],
            expires_at=row["expires_at"].astimezone(UTC),
            role=row["role"],
            user_active=True,
        )
