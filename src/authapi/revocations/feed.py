"""Keeping an instance's RevokedSessions current.

Three ways in, each covering the others' gaps:
- this instance's own revocations, at their commit (publish.py);
- on PostgreSQL, LISTEN on a dedicated connection: other instances' revocations
  arrive a few milliseconds after their commit;
- a poll of `sessions.revoked_at` (and of `deleted_sessions`, the revocations of
  sessions deleted with their account), every `revocation_poll_interval` seconds: the
  safety net when the listener is down, and the only way in on SQLite, where several
  worker processes share one database file. After a (re)connect the listener first
  reads the whole window, so nothing revoked while it was away is missed.
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from authapi.clock import Clock
from authapi.config import Settings
from authapi.db import READ_ONLY
from authapi.revocations.publish import CHANNEL, parse_notification
from authapi.revocations.registry import CLOCK_SKEW_MARGIN, RevokedSessions
from authapi.sessions.models import DeletedSession, LoginSession

logger = logging.getLogger(__name__)

# The listener's connection is named after the process, so an operator (or a test)
# can find it in pg_stat_activity.
LISTENER_APPLICATION_NAME = "authapi-revocations"
# A revoking request stamps `revoked_at` when it starts and commits a little later;
# each poll reads this far behind the previous one so that such a row is still seen.
POLL_OVERLAP = timedelta(seconds=30)
# How often the listener proves its connection alive: a link that died without
# closing (a network partition) is noticed within this time plus the db timeout.
KEEPALIVE_SECONDS = 10.0
RECONNECT_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class RevocationFeed:
    def __init__(
        self, settings: Settings, clock: Clock, engine: AsyncEngine, registry: RevokedSessions
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._engine = engine
        self._registry = registry
        self._window = timedelta(seconds=settings.access_token_ttl + CLOCK_SKEW_MARGIN)
        self._polled_at: datetime | None = None
        self._polls_failing = False
        self._tasks: list[asyncio.Task[None]] = []
        self.listening = False

    async def start(self) -> None:
        if not self._settings.instant_revocation:
            return
        try:
            await self.poll()
        except Exception:
            # Not fatal: the access path needs no database, and the poll retries.
            logger.warning("revocations: start-up read failed; retrying", exc_info=True)
        self._tasks.append(asyncio.create_task(self._poll_forever()))
        if not self._settings.is_sqlite:
            self._tasks.append(asyncio.create_task(self._listen_forever()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def poll(self, *, whole_window: bool = False) -> None:
        """Learn the sessions revoked since the previous poll (or in the whole window
        of live access tokens), and forget those whose tokens have all expired."""
        now = self._clock.now()
        since = now - self._window
        if not whole_window and self._polled_at is not None:
            since = max(since, self._polled_at - POLL_OVERLAP)
        async with self._engine.connect() as connection:
            await connection.execution_options(**READ_ONLY)
            rows = await connection.stream(
                select(LoginSession.id, LoginSession.revoked_at)
                .where(LoginSession.revoked_at > since)
                # And those whose rows went with their account (account/deletion.py).
                .union_all(
                    select(DeletedSession.id, DeletedSession.revoked_at).where(
                        DeletedSession.revoked_at > since
                    )
                )
            )
            async for session_id, revoked_at in rows:
                self._registry.add((session_id,), revoked_at or now)
        self._polled_at = now
        self._registry.drop_expired(now)

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.revocation_poll_interval)
            try:
                await self.poll()
            except Exception:
                if not self._polls_failing:  # once per outage, not twice a second
                    logger.warning("revocations: poll failed; retrying", exc_info=True)
                self._polls_failing = True
            else:
                if self._polls_failing:
                    logger.info("revocations: poll works again")
                self._polls_failing = False

    async def _listen_forever(self) -> None:
        attempt = 0
        while True:
            try:
                await self._listen()
                attempt = 0
            except Exception as exc:
                logger.warning(
                    "revocations: listener failed (%s); reconnecting", type(exc).__name__
                )
            await asyncio.sleep(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)])
            attempt += 1

    async def _listen(self) -> None:
        """Listen until the connection is lost."""
        url = make_url(self._settings.resolved_listen_database_url).set(drivername="postgresql")
        timeout = self._settings.db_timeout
        connection = await asyncpg.connect(
            url.render_as_string(hide_password=False),
            timeout=timeout,
            server_settings={"application_name": f"{LISTENER_APPLICATION_NAME}/{os.getpid()}"},
        )
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        try:
            await connection.add_listener(CHANNEL, self._on_notification)
            # Listening first, then reading: a revocation is seen one way or the other.
            await self.poll(whole_window=True)
            self.listening = True
            logger.info("revocations: listening")
            while not lost.is_set():
                try:
                    await asyncio.wait_for(lost.wait(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    await connection.execute("SELECT 1", timeout=timeout)
            logger.warning("revocations: listener connection lost; reconnecting")
        finally:
            self.listening = False
            connection.terminate()

    def _on_notification(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self._registry.add(parse_notification(payload), self._clock.now())
