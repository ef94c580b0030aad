"""Sending the outbox: `MailSender`, in every `authapi serve` process (started and
stopped in the app's lifespan) and in `authapi mail send`.

A pass claims the mails that are due, a batch at a time, and sends them one by one,
all over one connection to the relay (closed when the pass ends).
The claim moves each mail's `due_at` a lease ahead in the transaction that selects it:
on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so that senders on several instances take
disjoint batches without waiting for each other; on SQLite every transaction holds the
write lock (db.py), so claims are taken one after another. A sender that dies
mid-send leaves its claimed mails to come due again when the lease runs out: a mail may
then be sent twice, never lost. Each result is written in its own short transaction
as soon as the relay answers, so at most the mail in flight can repeat.

A mail the relay refuses for now (4xx, unreachable, a timeout) is tried again after
15 s, 30 s, 1 min, … (doubling, at most an hour apart); one still not sent a day after
it was queued, or refused for good (5xx), is marked failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authapi import metrics
from authapi.clock import Clock
from authapi.config import Settings
from authapi.db import READ_ONLY, transaction
from authapi.mail.delivery import DeliveryError, Transport
from authapi.mail.models import MailState, OutboxMail

logger = logging.getLogger(__name__)

BATCH = 20
FIRST_RETRY = timedelta(seconds=15)
LONGEST_RETRY = timedelta(hours=1)
GIVE_UP_AFTER = timedelta(days=1)
# Past any send of a batch (each connection and command is bounded by smtp_timeout).
LEASE_MARGIN = timedelta(seconds=60)


def retry_delay(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed try (1, 2, …)."""
    return min(FIRST_RETRY * (1 << min(attempts - 1, 20)), LONGEST_RETRY)


@dataclass(frozen=True)
class _Claimed:
    id: uuid.UUID
    recipient: str
    message: str
    attempts: int
    created_at: datetime


class MailSender:
    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        sessionmaker: async_sessionmaker[AsyncSession],
        transport: Transport,
        *,
        wakeup: asyncio.Event | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._sessionmaker = sessionmaker
        self._transport = transport
        # A few SMTP round trips per mail, each bounded by the timeout; twice that for
        # a mail tried again on a new connection when the relay dropped the kept one.
        self._lease = LEASE_MARGIN + BATCH * timedelta(seconds=8 * settings.smtp_timeout)
        self._task: asyncio.Task[None] | None = None
        # Set when there may be mail due before the next poll (app.session_class sets it
        # when a transaction that queued mail commits).
        self._wake = wakeup or asyncio.Event()
        self._stopping = False
        # Seen by the last pass: for the oldest-pending-age gauge (metrics_export.py).
        self.oldest_pending_age = 0.0

    async def run_once(self) -> int:
        """Send every mail that is due now; the number handed over."""
        sent = 0
        try:
            while True:
                claimed = await self._claim()
                for index, mail in enumerate(claimed):
                    if self._stopping:
                        # Shutting down: the rest of the batch is due again at once, for
                        # another sender, rather than when the lease runs out.
                        await self._release(claimed[index:])
                        return sent
                    sent += await self._send(mail)
                if len(claimed) < BATCH or self._stopping:
                    break
        finally:
            # The pass's one relay connection (delivery.py), not kept while idle.
            await self._transport.close()
        await self._measure()
        return sent

    async def _claim(self) -> list[_Claimed]:
        now = self._clock.now()
        # Most passes find nothing due: they look without SQLite's write lock, which
        # the claim below takes, so that an idle sender never holds up a writer.
        async with transaction(self._sessionmaker) as db:
            await db.connection(execution_options=READ_ONLY)
            due = await db.scalar(
                select(OutboxMail.id)
                .where(OutboxMail.state == MailState.PENDING.value, OutboxMail.due_at <= now)
                .limit(1)
            )
        if due is None:
            return []
        async with transaction(self._sessionmaker) as db:
            rows = (
                await db.execute(
                    select(
                        OutboxMail.id,
                        OutboxMail.recipient,
                        OutboxMail.message,
                        OutboxMail.attempts,
                        OutboxMail.created_at,
                    )
                    .where(OutboxMail.state == MailState.PENDING.value, OutboxMail.due_at <= now)
                    .order_by(OutboxMail.due_at)
                    .limit(BATCH)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if rows:
                await db.execute(
                    update(OutboxMail)
                    .where(OutboxMail.id.in_([row.id for row in rows]))
                    .values(due_at=now + self._lease)
                    .execution_options(synchronize_session=False)
                )
        return [
            _Claimed(row.id, row.recipient, row.message or "", row.attempts, row.created_at)
            for row in rows
        ]

    async def _release(self, mails: list[_Claimed]) -> None:
        async with transaction(self._sessionmaker) as db:
            await db.execute(
                update(OutboxMail)
                .where(OutboxMail.id.in_([mail.id for mail in mails]))
                .values(due_at=self._clock.now())
                .execution_options(synchronize_session=False)
            )

    async def _send(self, mail: _Claimed) -> int:
        try:
            await self._transport.deliver(mail.id, mail.recipient, mail.message)
        except DeliveryError as exc:
            await self._record_failure(mail, exc)
            return 0
        now = self._clock.now()
        async with transaction(self._sessionmaker) as db:
            await db.execute(
                update(OutboxMail)
                .where(OutboxMail.id == mail.id)
                # The message may hold a link with a token: not kept once sent.
                .values(
                    state=MailState.SENT.value,
                    sent_at=now,
                    message=None,
                    attempts=mail.attempts + 1,
                    last_error=None,
                )
                .execution_options(synchronize_session=False)
            )
        metrics.MAIL_SENT.inc()
        return 1

    async def _record_failure(self, mail: _Claimed, error: DeliveryError) -> None:
        now = self._clock.now()
        attempts = mail.attempts + 1
        give_up = error.permanent or now + retry_delay(attempts) - mail.created_at > GIVE_UP_AFTER
        values: dict[str, object] = {"attempts": attempts, "last_error": error.reason[:500]}
        if give_up:
            values.update(state=MailState.FAILED.value, message=None)
        else:
            values.update(due_at=now + retry_delay(attempts))
        async with transaction(self._sessionmaker) as db:
            await db.execute(
                update(OutboxMail)
                .where(OutboxMail.id == mail.id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        if give_up:
            metrics.MAIL_FAILED.inc()
            logger.error("mail %s given up after %d attempts: %s", mail.id, attempts, error.reason)
        else:
            metrics.MAIL_RETRIED.inc()
            logger.warning(
                "mail %s not sent (attempt %d), retrying in %s: %s",
                mail.id,
                attempts,
                retry_delay(attempts),
                error.reason,
            )

    async def _measure(self) -> None:
        async with transaction(self._sessionmaker) as db:
            await db.connection(execution_options=READ_ONLY)
            oldest = await db.scalar(
                select(func.min(OutboxMail.created_at)).where(
                    OutboxMail.state == MailState.PENDING.value
                )
            )
        if oldest is None:
            self.oldest_pending_age = 0.0
        else:
            self.oldest_pending_age = max(0.0, (self._clock.now() - oldest).total_seconds())

    def wake(self) -> None:
        """Look for due mail now rather than at the next poll."""
        self._wake.set()

    async def run_forever(self) -> None:
        while not self._stopping:
            try:
                await self.run_once()
            except Exception:
                # The database is down, say: the mail waits in the outbox meanwhile.
                logger.exception("mail sender: a pass failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.mail_poll_interval)
            self._wake.clear()

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self.run_forever(), name="authapi-mail-sender")

    async def stop(self) -> None:
        """Let the mail in flight finish, then end. Not a cancellation: one in the
        middle of a transaction can leave its connection, and on SQLite the write lock,
        to the garbage collector. Cancelled only if the relay hangs past its timeouts."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        bound = 8 * self._settings.smtp_timeout + 2 * self._settings.db_timeout
        try:
            await asyncio.wait_for(asyncio.shield(self._task), bound)
        except TimeoutError:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
