"""`authapi prune`: delete what has ended, in short batches, so that pruning a large
table never holds locks for long."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authapi.audit import service as audit
from authapi.clock import Clock
from authapi.config import Settings
from authapi.db import create_engine, create_sessionmaker, transaction
from authapi.sessions import service as sessions

PruneBatch = Callable[[AsyncSession, datetime, int], Awaitable[int]]


async def _prune_all(
    maker: async_sessionmaker[AsyncSession], prune_batch: PruneBatch, cutoff: datetime, size: int
) -> int:
    total = 0
    while True:
        async with transaction(maker) as db:  # one short transaction per batch
            deleted = await prune_batch(db, cutoff, size)
        total += deleted
        if deleted < size:
            return total


async def prune(settings: Settings, batch_size: int) -> tuple[int, int]:
    """Delete ended sessions and old audit events: (sessions, events) deleted."""
    engine = create_engine(settings)
    maker = create_sessionmaker(engine)
    now = Clock().now()
    try:
        # Keep what ended within the last access-token lifetime: its access tokens may
        # still be in use, and the revocation record is what refuses them.
        ended = now - timedelta(seconds=settings.access_token_ttl)
        session_count = await _prune_all(maker, sessions.prune_batch, ended, batch_size)
        old = now - timedelta(days=settings.audit_retention_days)
        event_count = await _prune_all(maker, audit.prune_batch, old, batch_size)
        return session_count, event_count
    finally:
        await engine.dispose()
