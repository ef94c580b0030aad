"""The outbox and its senders, against a real SMTP server in the test process."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authapi import prune
from authapi.config import Settings
from authapi.db import create_engine, create_sessionmaker, transaction
from authapi.mail.delivery import MailFolder, SMTPRelay, Transport, transport_for
from authapi.mail.models import MailState
from authapi.mail.outbox import enqueue
from authapi.mail.sender import FIRST_RETRY, MailSender
from tests.support.clock import FakeClock
from tests.support.database import POSTGRES_URL
from tests.support.mail import (
    LINK,
    Inbox,
    SMTPServer,
    queue,
    relay_settings,
    reset_mail,
    rows,
    start_server,
)
from tests.support.servers import free_port
from tests.support.settings import make_settings


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


class TestDelivery:
    async def test_a_queued_mail_is_sent_once(
        self,
        maker: async_sessionmaker[AsyncSession],
        relayed_settings: Settings,
        clock: FakeClock,
        smtp_server: SMTPServer,
        relay_sender: MailSender,
    ) -> None:
        settings, sender = relayed_settings, relay_sender
        queued_before = sample("authapi_mail_queued_total")
        sent_before = sample("authapi_mail_sent_total")
        await queue(maker, settings, clock)
        assert sample("authapi_mail_queued_total") == queued_before + 1
        clock.advance(42)
        await sender._measure()  # noqa: SLF001 - the gauge's source, before the pass
        assert sender.oldest_pending_age == pytest.approx(42, abs=1)

        assert await sender.run_once() == 1
        assert await sender.run_once() == 0

        [received] = smtp_server.inbox.messages
        assert received["To"] == "user0@example.com"
        assert received["From"] == settings.mail_from
        assert received["Message-ID"]
        assert received["Date"]
        assert received.get_content_type() == "multipart/alternative"
        text = received.get_body(("plain",))
        html = received.get_body(("html",))
        assert text is not None
        assert LINK in text.get_content()
        assert html is not None
        assert 'href="https://app.example/reset#token=' in html.get_content()
        [row] = await rows(maker)
        assert (row.state, row.attempts, row.message) == (MailState.SENT, 1, None)
        assert sample("authapi_mail_sent_total") == sent_before + 1
        assert sender.oldest_pending_age == 0

    async def test_a_rolled_back_transaction_queues_nothing(
        self, maker: async_sessionmaker[AsyncSession], settings: Settings, clock: FakeClock
    ) -> None:
        async def failing_change() -> None:
            async with transaction(maker) as db:
                await enqueue(db, reset_mail(settings, clock, "a@example.com"), clock.now())
                raise RuntimeError("the change failed")

        with pytest.raises(RuntimeError):
            await failing_change()
        assert await rows(maker) == []


class TestRetries:
    async def test_refused_mail_is_retried_with_backoff_and_arrives(
        self,
        maker: async_sessionmaker[AsyncSession],
        relayed_settings: Settings,
        clock: FakeClock,
        smtp_server: SMTPServer,
        relay_sender: MailSender,
    ) -> None:
        settings, sender = relayed_settings, relay_sender
        await queue(maker, settings, clock)
        smtp_server.inbox.refuse = True

        assert await sender.run_once() == 0
        [row] = await rows(maker)
        assert (row.state, row.attempts) == (MailState.PENDING, 1)
        assert timedelta(0) < row.due_at - clock.now() <= timedelta(seconds=30)
        assert row.last_error is not None
        assert "451" in row.last_error

        clock.advance(FIRST_RETRY.total_seconds() - 2)
        assert await sender.run_once() == 0  # not due yet: not even tried
        [row] = await rows(maker)
        assert row.attempts == 1

        clock.advance(2)
        assert await sender.run_once() == 0  # still refused: the wait doubles
        [row] = await rows(maker)
        assert row.attempts == 2
        assert row.due_at - clock.now() == pytest.approx(2 * FIRST_RETRY, abs=timedelta(seconds=1))

        smtp_server.inbox.refuse = False
        clock.advance(2 * FIRST_RETRY.total_seconds())
        assert await sender.run_once() == 1
        assert len(smtp_server.inbox.messages) == 1

    async def test_mail_waits_while_the_relay_is_down(
        self, maker: async_sessionmaker[AsyncSession], settings: Settings, clock: FakeClock
    ) -> None:
        port = free_port()  # nothing listens there yet
        settings = relay_settings(settings, port)
        sender = MailSender(settings, clock, maker, SMTPRelay(settings))
        await queue(maker, settings, clock, 3)
        assert await sender.run_once() == 0
        assert {row.state for row in await rows(maker)} == {MailState.PENDING}

        server = start_server(Inbox(), port=port)
        try:
            clock.advance(FIRST_RETRY.total_seconds())
            assert await sender.run_once() == 3
            assert sorted(m["To"] for m in server.inbox.messages) == [
                f"user{n}@example.com" for n in range(3)
            ]
        finally:
            server.stop()

    async def test_given_up_after_a_day(
        self,
        maker: async_sessionmaker[AsyncSession],
        relayed_settings: Settings,
        clock: FakeClock,
        smtp_server: SMTPServer,
        relay_sender: MailSender,
    ) -> None:
        settings, sender = relayed_settings, relay_sender
        await queue(maker, settings, clock)
        smtp_server.inbox.refuse = True
        failed_before = sample("authapi_mail_failed_total")
        for _ in range(40):  # each wait: double the last, at most an hour
            clock.advance(3600)
            await sender.run_once()
            [row] = await rows(maker)
            if row.state != MailState.PENDING:
                break
        assert row.state == MailState.FAILED
        assert row.message is None
        assert row.due_at - row.created_at <= timedelta(days=1)
        assert timedelta(hours=23) <= clock.now() - row.created_at <= timedelta(days=1)
        assert sample("authapi_mail_failed_total") == failed_before + 1
        smtp_server.inbox.refuse = False
        clock.advance(86400)
        assert await sender.run_once() == 0
        assert smtp_server.inbox.messages == []

    async def test_a_permanent_refusal_fails_at_once(
        self,
        maker: async_sessionmaker[AsyncSession],
        relayed_settings: Settings,
        clock: FakeClock,
        smtp_server: SMTPServer,
        relay_sender: MailSender,
    ) -> None:
        settings, sender = relayed_settings, relay_sender
        await queue(maker, settings, clock)
        smtp_server.inbox.refuse = True
        smtp_server.inbox.refusal = "550 5.1.1 no such mailbox"
        await sender.run_once()
        [row] = await rows(maker)
        assert (row.state, row.attempts) == (MailState.FAILED, 1)
        assert row.last_error is not None
        assert "550" in row.last_error


class _Crash(Exception):
    pass


class _CrashingTransport:
    """A sender process that dies in the middle of a send."""

    async def deliver(self, mail_id: uuid.UUID, recipient: str, message: str) -> None:
        raise _Crash

    async def close(self) -> None:
        pass


class TestLease:
    async def test_a_crash_mid_send_repeats_the_mail_later_never_loses_it(
        self,
        maker: async_sessionmaker[AsyncSession],
        relayed_settings: Settings,
        clock: FakeClock,
        smtp_server: SMTPServer,
        relay_sender: MailSender,
    ) -> None:
        settings, survivor = relayed_settings, relay_sender
        crashing: Transport = _CrashingTransport()
        await queue(maker, settings, clock)
        with pytest.raises(_Crash):
            await MailSender(settings, clock, maker, crashing).run_once()

        assert await survivor.run_once() == 0  # still leased to the dead sender
        clock.advance(30 * 60)
        assert await survivor.run_once() == 1
        assert len(smtp_server.inbox.messages) == 1


class TestSeveralSenders:
    @pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
    async def test_two_instances_send_each_of_200_mails_once(
        self,
        maker: async_sessionmaker[AsyncSession],
        relayed_settings: Settings,
        clock: FakeClock,
        smtp_server: SMTPServer,
        database_url: str,
    ) -> None:
        assert database_url == POSTGRES_URL
        settings = relayed_settings
        await queue(maker, settings, clock, 200)
        engines = [create_engine(settings) for _ in range(2)]
        try:
            senders = [
                MailSender(settings, clock, create_sessionmaker(engine), SMTPRelay(settings))
                for engine in engines
            ]
            counts = await asyncio.gather(*(sender.run_once() for sender in senders))
        finally:
            for engine in engines:
                await engine.dispose()
        assert sum(counts) == 200
        assert all(count > 0 for count in counts), counts  # both took part
        received = smtp_server.inbox.messages
        assert len(received) == 200
        assert len({m["Message-ID"] for m in received}) == 200
        assert {row.state for row in await rows(maker)} == {MailState.SENT}


class TestEmbeddedDefault:
    async def test_mail_is_written_as_a_private_eml_file(
        self,
        maker: async_sessionmaker[AsyncSession],
        database_url: str,
        tmp_path: Path,
        clock: FakeClock,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        settings = make_settings(database_url, tmp_path / "data")
        [mail_id] = await queue(maker, settings, clock)
        caplog.set_level(logging.DEBUG)
        sender = MailSender(settings, clock, maker, MailFolder(settings.data_dir / "mail"))
        assert await sender.run_once() == 1

        folder = settings.data_dir / "mail"
        path = folder / f"{mail_id}.eml"
        assert folder.stat().st_mode & 0o777 == 0o700
        assert path.stat().st_mode & 0o777 == 0o600
        written = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(written, EmailMessage)
        body = written.get_body(("plain",))
        assert body is not None
        assert LINK in body.get_content()
        assert str(path) in caplog.text
        assert "pr_SECRET" not in caplog.text
        assert "app.example" not in caplog.text

    async def test_no_relay_means_the_folder(self, settings: Settings) -> None:
        transport = transport_for(settings)
        assert isinstance(transport, MailFolder)
        assert transport.folder == settings.data_dir / "mail"


class TestPrune:
    async def test_sent_mail_is_pruned_pending_mail_is_kept(
        self,
        maker: async_sessionmaker[AsyncSession],
        relayed_settings: Settings,
        clock: FakeClock,
        smtp_server: SMTPServer,
        relay_sender: MailSender,
    ) -> None:
        settings, sender = relayed_settings, relay_sender
        [first] = await queue(maker, settings, clock)
        await sender.run_once()
        [second] = await queue(maker, settings, clock)

        pruned = await prune.prune(settings, batch_size=10)

        assert pruned.mails == 1
        assert [row.id for row in await rows(maker)] == [second]
        assert first != second
