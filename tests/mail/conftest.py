"""Mail tests: the outbox and tokens on a real database (both backends, from the
shared harness), senders built directly so a test runs one pass when it wants."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authapi.app import session_class
from authapi.config import Settings
from authapi.db import create_engine, create_sessionmaker
from authapi.mail.delivery import SMTPRelay
from authapi.mail.models import MailToken, OutboxMail
from authapi.mail.sender import MailSender
from authapi.users.models import User
from tests.support.clock import FakeClock
from tests.support.mail import SMTPServer, relay_settings, smtp_server  # noqa: F401 - a fixture


@pytest.fixture
async def maker(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(settings)
    # The app's Session class: metrics held back until commit are counted as in the app.
    sessionmaker = create_sessionmaker(engine, session_class=session_class())
    async with engine.begin() as connection:
        for table in (OutboxMail, MailToken, User):
            await connection.execute(delete(table))
    try:
        yield sessionmaker
    finally:
        await engine.dispose()


@pytest.fixture
def relayed_settings(settings: Settings, smtp_server: SMTPServer) -> Settings:  # noqa: F811
    """The test's settings, with mail relayed to `smtp_server`."""
    return relay_settings(settings, smtp_server.port)


@pytest.fixture
def relay_sender(
    relayed_settings: Settings, clock: FakeClock, maker: async_sessionmaker[AsyncSession]
) -> MailSender:
    """A sender of the outbox to `smtp_server`, run a pass at a time by the test."""
    return MailSender(relayed_settings, clock, maker, SMTPRelay(relayed_settings))
