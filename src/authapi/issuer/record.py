"""The issuer recorded in the shared database, so that disagreeing instances say so.

Instances that share a database but name different issuers refuse each other's access
tokens (`iss`), and nothing else tells why. The first instance to start records its
issuer; the record then stays: an instance that starts with another issuer logs an
error naming both, while the ones that agree keep quiet. (Following the newest start
instead would let one stray instance, say a laptop pointed at production, turn every
correct instance into the one that looks wrong.) An operator who changes the issuer on
purpose records the new one with `authapi issuer set URL` (commands.py) and restarts
the instances with it.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authapi.db import READ_ONLY, transaction
from authapi.errors import DATABASE_UNAVAILABLE
from authapi.issuer.models import RECORD_ID, RecordedIssuer

logger = logging.getLogger(__name__)


async def recorded_issuer(maker: async_sessionmaker[AsyncSession]) -> str | None:
    async with maker() as db:
        await db.connection(execution_options=READ_ONLY)
        row = await db.get(RecordedIssuer, RECORD_ID)
        return row.issuer if row else None


async def record_first(maker: async_sessionmaker[AsyncSession], issuer: str, now: datetime) -> str:
    """The recorded issuer, after recording `issuer` if there was none."""
    recorded = await recorded_issuer(maker)
    if recorded is not None:
        return recorded
    # An IntegrityError: another instance recorded one at the same moment; read below.
    with contextlib.suppress(sa_exc.IntegrityError):
        async with transaction(maker) as db:
            db.add(RecordedIssuer(id=RECORD_ID, issuer=issuer, recorded_at=now))
    return await recorded_issuer(maker) or issuer


async def set_issuer(
    maker: async_sessionmaker[AsyncSession], issuer: str, now: datetime
) -> str | None:
    """Record `issuer` whatever was recorded; the previous one, or None."""
    async with transaction(maker) as db:
        row = await db.get(RecordedIssuer, RECORD_ID, with_for_update=True)
        if row is None:
            db.add(RecordedIssuer(id=RECORD_ID, issuer=issuer, recorded_at=now))
            return None
        previous = row.issuer
        row.issuer, row.recorded_at = issuer, now
        return previous


async def check_issuer(maker: async_sessionmaker[AsyncSession], issuer: str, now: datetime) -> None:
    """At an instance's start: record its issuer, or log an error if another is."""
    try:
        recorded = await record_first(maker, issuer, now)
    except DATABASE_UNAVAILABLE as exc:
        # Not fatal, like the rest of a start during an outage; checked at the next one.
        logger.warning("issuer: cannot read the recorded issuer (%s)", type(exc).__name__)
        return
    if recorded != issuer:
        logger.error(
            "issuer: this instance's issuer is %s, but the database records %s, the issuer "
            "of the instances that started first: each refuses the other's access tokens "
            "(401). Give every instance the same AUTHAPI_ISSUER, or, to change it on "
            "purpose, run `authapi issuer set %s` and restart every instance with it",
            issuer,
            recorded,
            issuer,
        )
