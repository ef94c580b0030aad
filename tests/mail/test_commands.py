"""`authapi mail send`, and the sender that every app runs in its lifespan."""

from __future__ import annotations

from pathlib import Path

from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authapi.app import create_app
from authapi.config import Settings
from authapi.context import AppContext
from authapi.mail.models import MailState
from tests.support.clock import FakeClock
from tests.support.mail import SMTPServer, queue, relay_settings, rows
from tests.support.servers import authapi_env, run_authapi


class TestMailSendCommand:
    async def test_sends_what_is_due_and_exits(
        self,
        maker: async_sessionmaker[AsyncSession],
        settings: Settings,
        database_url: str,
        clock: FakeClock,
        smtp_server: SMTPServer,
        tmp_path: Path,
    ) -> None:
        await queue(maker, settings, clock, 3)
        env = authapi_env(database_url, settings.data_dir)
        env["AUTHAPI_SMTP_URL"] = f"smtp://127.0.0.1:{smtp_server.port}"

        result = run_authapi("mail", "send", env=env, cwd=tmp_path)

        assert result.returncode == 0, result.stderr
        assert "sent 3 mails" in result.stdout
        assert len(smtp_server.inbox.messages) == 3
        again = run_authapi("mail", "send", env=env, cwd=tmp_path)
        assert "sent 0 mails" in again.stdout
        assert len(smtp_server.inbox.messages) == 3


class TestAppSender:
    async def test_the_app_sends_its_outbox_and_stops_cleanly(
        self,
        maker: async_sessionmaker[AsyncSession],
        settings: Settings,
        clock: FakeClock,
        smtp_server: SMTPServer,
    ) -> None:
        settings = relay_settings(settings, smtp_server.port)
        await queue(maker, settings, clock)
        app = create_app(settings, clock=clock)
        async with LifespanManager(app):
            context: AppContext = app.state.context
            # The background pass may have sent it already; never both.
            await context.mail_sender.run_once()
        assert len(smtp_server.inbox.messages) == 1
        assert [row.state for row in await rows(maker)] == [MailState.SENT]
