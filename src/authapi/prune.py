"""`authapi prune`: delete what has ended, in short batches, so that pruning a large
table never holds locks for long."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authapi.audit import service as audit
from authapi.clock import Clock
from authapi.config import Settings
from authapi.db import create_engine, create_sessionmaker, delete_batch, transaction
from authapi.mail import outbox, tokens
from authapi.mfa import tokens as mfa_tokens
from authapi.passkeys.models import PasskeyChallenge
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


@dataclass(frozen=True)
class Pruned:
    sessions: int
    audit_events: int
    mails: int  # sent, or given up on longer ago than the audit retention
    mail_tokens: int  # expired
    mfa_tokens: int = 0  # expired
    passkey_challenges: int = 0  # expired


async def _prune_challenges(db: AsyncSession, now: datetime, size: int) -> int:
    return await delete_batch(db, PasskeyChallenge.expires_at, now, size)


async def prune(settings: Settings, batch_size: int) -> Pruned:
    """Delete ended sessions, old audit events, sent mail, and expired mail tokens,
    mfa_tokens and passkey challenges."""
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
        # A sent mail's message is already gone (mail/sender.py): nothing to keep. A
        # failed one stays as long as the audit trail, for the operator to look into.
        mail_count = await _prune_all(maker, outbox.prune_sent_batch, now, batch_size)
        mail_count += await _prune_all(maker, outbox.prune_failed_batch, old, batch_size)
        token_count = await _prune_all(maker, tokens.prune_batch, now, batch_size)
        mfa_count = await _prune_all(maker, mfa_tokens.prune_batch, now, batch_size)
        challenge_count = await _prune_all(maker, _prune_challenges, now, batch_size)
        return Pruned(
            session_count, event_count, mail_count, token_count, mfa_count, challenge_count
        )
    finally:
        await engine.dispose()
