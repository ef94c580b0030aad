"""Twenty requests at once for mail to one recipient (a new verification mail, an
admin's reset mail): the per-recipient limit (AUTHAPI_RATE_LIMIT_MAIL_RECIPIENT, 5 an
hour) lets exactly five through, whatever the race, and only five mails go out."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from authapi.context import AppContext
from tests.account.test_password_reset import queued_for
from tests.support.factories import bearer, make_admin, registered_login
from tests.support.mail import Mailbox, SMTPServer, mailbox_overrides
from tests.support.settings import CHEAP_HASHES

RACERS = 20
RECIPIENT_LIMIT = 5  # the default of AUTHAPI_RATE_LIMIT_MAIL_RECIPIENT


@pytest.fixture
def settings_overrides(smtp_server: SMTPServer) -> dict[str, object]:
    return {
        **mailbox_overrides(smtp_server),
        **CHEAP_HASHES,
        # Only the per-recipient limit is under test. All the requests come from one
        # client: its per-address limit (20 an hour) would just let twenty through, and
        # is raised so that a request more, or a lower default, cannot blur the count.
        "rate_limit_mail_address": "1000/hour",
        # The requests wait for each other's locks (SQLite's writer lock above all):
        # longer than a busy machine needs.
        "db_timeout": 30,
    }


async def signed_up(client: httpx.AsyncClient, mailbox: Mailbox) -> tuple[dict[str, Any], Any]:
    """A new user, their sign-up mail taken out of the inbox (it is not counted against
    the recipient limit), and a session of theirs."""
    user, tokens = await registered_login(client)
    await mailbox.receive(user["email"])
    return user, tokens


async def race(
    context: AppContext,
    mailbox: Mailbox,
    email: str,
    request: Callable[[], Awaitable[httpx.Response]],
) -> None:
    """Send `request` RACERS times at once: exactly RECIPIENT_LIMIT are accepted, the
    rest refused as rate limited (never a 5xx), and exactly that many mails go out."""
    queued_before = await queued_for(context, email)
    answers = await asyncio.gather(*(request() for _ in range(RACERS)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [202] * RECIPIENT_LIMIT + [429] * (RACERS - RECIPIENT_LIMIT), [
        answer.text for answer in answers if answer.status_code not in (202, 429)
    ]
    assert all(int(a.headers["Retry-After"]) > 0 for a in answers if a.status_code == 429)
    assert await queued_for(context, email) == queued_before + RECIPIENT_LIMIT
    for _ in range(RECIPIENT_LIMIT):
        await mailbox.receive(email)
    await context.mail_sender.run_once()  # anything still queued goes out now
    assert mailbox.to(email) == []


class TestVerificationMailRace:
    async def test_twenty_at_once_send_five(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user, tokens = await signed_up(client, mailbox)
        assert user["email_verified"] is False

        await race(
            context,
            mailbox,
            user["email"],
            lambda: client.post("/email/verification", headers=bearer(tokens)),
        )


class TestAdminResetMailRace:
    async def test_twenty_at_once_send_five(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user, _ = await signed_up(client, mailbox)
        admin_user, admin = await make_admin(client, context)
        await mailbox.receive(admin_user["email"])  # the admin's own sign-up mail

        await race(
            context,
            mailbox,
            user["email"],
            lambda: client.post(f"/admin/users/{user['id']}/password-reset", headers=bearer(admin)),
        )
