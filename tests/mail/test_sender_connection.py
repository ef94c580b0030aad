"""A sender's pass and its one connection to the relay: every batch over it, each
result written before the next mail is sent, a refusal that leaves it open; against a
real SMTP server in the test process."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authapi.config import Settings
from authapi.mail.delivery import SMTPRelay
from authapi.mail.models import MailState
from authapi.mail.sender import BATCH, MailSender
from tests.support.clock import FakeClock
from tests.support.mail import SMTPServer, queue, rows


class _Watching:
    """The relay, noting before each mail how many of the pass's mails the outbox
    already holds as sent."""

    def __init__(self, relay: SMTPRelay, maker: async_sessionmaker[AsyncSession]) -> None:
        self.relay = relay
        self.maker = maker
        self.sent_before: list[int] = []

    async def deliver(self, mail_id: uuid.UUID, recipient: str, message: str) -> None:
        states = [row.state for row in await rows(self.maker)]
        self.sent_before.append(states.count(MailState.SENT))
        await self.relay.deliver(mail_id, recipient, message)

    async def close(self) -> None:
        await self.relay.close()


class TestOneConnectionPerPass:
    async def test_every_batch_of_a_pass_goes_over_one_connection(
        self,
        maker: async_sessionmaker[AsyncSession],
        relayed_settings: Settings,
        clock: FakeClock,
        smtp_server: SMTPServer,
        relay_sender: MailSender,
    ) -> None:
        settings, sender = relayed_settings, relay_sender
        await queue(maker, settings, clock, 2 * BATCH + 5)
        assert await sender.run_once() == 2 * BATCH + 5
        received = smtp_server.inbox.messages
        assert len({m["Message-ID"] for m in received}) == len(received) == 2 * BATCH + 5
        assert smtp_server.inbox.connections == 1
        assert {row.state for row in await rows(maker)} == {MailState.SENT}

        # Not kept open while idle: the next pass has a connection of its own.
        await queue(maker, settings, clock)
        assert await sender.run_once() == 1
        assert smtp_server.inbox.connections == 2

    async def test_each_result_is_written_before_the_next_mail_is_sent(
        self,
        maker: async_sessionmaker[AsyncSession],
        relayed_settings: Settings,
        clock: FakeClock,
        smtp_server: SMTPServer,
    ) -> None:
        settings = relayed_settings
        await queue(maker, settings, clock, 5)
        watching = _Watching(SMTPRelay(settings), maker)
        assert await MailSender(settings, clock, maker, watching).run_once() == 5
        assert watching.sent_before == [0, 1, 2, 3, 4]
        assert smtp_server.inbox.connections == 1

    async def test_a_refused_mail_does_not_end_the_connection(
        self,
        maker: async_sessionmaker[AsyncSession],
        relayed_settings: Settings,
        clock: FakeClock,
        smtp_server: SMTPServer,
        relay_sender: MailSender,
    ) -> None:
        settings = relayed_settings
        await queue(maker, settings, clock, 3)
        smtp_server.inbox.refuse_to = {"user1@example.com"}
        assert await relay_sender.run_once() == 2
        assert sorted(m["To"] for m in smtp_server.inbox.messages) == [
            "user0@example.com",
            "user2@example.com",
        ]
        assert smtp_server.inbox.connections == 1
        states = {row.recipient: (row.state, row.attempts) for row in await rows(maker)}
        assert states["user1@example.com"] == (MailState.PENDING, 1)
        assert states["user2@example.com"] == (MailState.SENT, 1)
