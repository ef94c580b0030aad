"""Password reset against an attacker: who has an account stays unknown, nobody is
locked out, a token works once however many race it, hostile input changes nothing, a
copy of the database opens nothing, and a relay outage loses no mail."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from authapi.context import AppContext
from authapi.db import Base
from authapi.mail.models import MailState, OutboxMail
from authapi.mail.sender import FIRST_RETRY
from tests.support.clock import FakeClock
from tests.support.factories import (
    PASSWORD,
    hashing_blocked,
    new_email,
    password_form,
    register,
    update_user,
)
from tests.support.mail import Mailbox, SMTPServer, mailbox_overrides, token_of
from tests.support.settings import CHEAP_HASHES
from tests.support.waiting import wait_until

NEW_PASSWORD = "a brand new passphrase"
# Headers that differ between any two answers, whatever they answer.
PER_RESPONSE_HEADERS = {"date", "x-request-id"}


async def forgot(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post("/password/forgot", json={"email": email})


async def reset(
    client: httpx.AsyncClient, token: str, password: str = NEW_PASSWORD
) -> httpx.Response:
    return await client.post("/password/reset", json={"token": token, "new_password": password})


def post_json(client: httpx.AsyncClient, path: str, body: Any) -> Awaitable[httpx.Response]:
    # json.dumps escapes a lone surrogate, which httpx's own encoder cannot send.
    return client.post(
        path, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )


async def signed_up(client: httpx.AsyncClient, mailbox: Mailbox) -> dict[str, Any]:
    user = await register(client)
    await mailbox.receive(user["email"])  # the verification mail, out of the way
    return user


async def password_is(client: httpx.AsyncClient, email: str, password: str) -> bool:
    return (await client.post("/token", data=password_form(email, password))).status_code == 200


async def outbox(context: AppContext) -> list[OutboxMail]:
    async with context.sessionmaker() as db:
        return list(await db.scalars(select(OutboxMail)))


async def eventually(condition: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Until the database shows `condition` (what another task does: the sender)."""
    holds = False

    async def check() -> None:
        nonlocal holds
        holds = await condition()

    async def poll() -> None:
        while not holds:
            await check()
            if not holds:
                await asyncio.sleep(0.01)

    task = asyncio.ensure_future(poll())
    try:
        await wait_until(task.done, within)
    finally:
        task.cancel()


def shown(response: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k not in PER_RESPONSE_HEADERS}
    return response.status_code, response.content, headers


class TestEnumeration:
    async def test_known_unknown_and_disabled_look_the_same(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        known = await signed_up(client, mailbox)
        disabled = await signed_up(client, mailbox)
        await update_user(context, disabled, is_active=False)
        unknown = new_email()
        answers = [
            await forgot(client, email) for email in (known["email"], disabled["email"], unknown)
        ]
        assert answers[0].status_code == 202
        assert shown(answers[0]) == shown(answers[1]) == shown(answers[2])
        await mailbox.receive(known["email"])
        recipients = [mail.recipient for mail in await outbox(context)]
        assert unknown not in recipients
        assert recipients.count(disabled["email"]) == 1  # its verification mail only

    async def test_no_password_is_hashed_either_way(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        # A hash would take a time of its own, and wait here for ever: none may happen.
        user = await signed_up(client, mailbox)
        with hashing_blocked(context):
            for email in (user["email"], new_email()):
                response = await asyncio.wait_for(forgot(client, email), 30)
                assert response.status_code == 202


class TestLimits:
    @pytest.fixture
    def settings_overrides(self, smtp_server: SMTPServer) -> dict[str, object]:
        return {
            **mailbox_overrides(smtp_server),
            "rate_limit_mail_recipient": "2/hour",
            "rate_limit_mail_address": "8/hour",
        }

    async def test_the_recipient_limit_counts_unknown_addresses_too(
        self, client: httpx.AsyncClient, mailbox: Mailbox
    ) -> None:
        user = await signed_up(client, mailbox)
        answers: dict[str, list[httpx.Response]] = {}
        for email in (user["email"], new_email()):
            answers[email] = [await forgot(client, email) for _ in range(3)]
            assert [r.status_code for r in answers[email]] == [202, 202, 429]
            assert int(answers[email][2].headers["Retry-After"]) > 0
        known, unknown = answers.values()
        assert known[2].json() == unknown[2].json()

    async def test_whoever_floods_an_address_cannot_lock_its_owner_out(
        self, client: httpx.AsyncClient, mailbox: Mailbox
    ) -> None:
        # An attacker uses up the owner's recipient limit: each of those requests mailed
        # the owner a link, and the newest one still works.
        user = await signed_up(client, mailbox)
        for _ in range(2):
            assert (await forgot(client, user["email"])).status_code == 202
        assert (await forgot(client, user["email"])).status_code == 429  # the owner, now
        tokens = [await mailbox.token(user["email"]) for _ in range(2)]
        assert (await reset(client, tokens[-1])).status_code == 204
        assert await password_is(client, user["email"], NEW_PASSWORD)

    async def test_the_address_limit_covers_every_recipient(
        self, client: httpx.AsyncClient
    ) -> None:
        statuses = [(await forgot(client, new_email())).status_code for _ in range(9)]
        assert statuses == [202] * 8 + [429]


class TestConcurrentResets:
    @pytest.fixture
    def settings_overrides(self, smtp_server: SMTPServer) -> dict[str, object]:
        # The requests wait for each other's locks: longer than a busy machine needs.
        return {**mailbox_overrides(smtp_server), **CHEAP_HASHES, "db_timeout": 30}

    async def test_twenty_at_once_with_one_token_one_wins(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user = await signed_up(client, mailbox)
        assert (await forgot(client, user["email"])).status_code == 202
        token = await mailbox.token(user["email"])
        passwords = [f"racing passphrase {n}" for n in range(20)]
        answers = await asyncio.gather(*(reset(client, token, p) for p in passwords))
        statuses = [answer.status_code for answer in answers]
        assert statuses.count(204) == 1, [a.text for a in answers]
        assert statuses.count(400) == 19
        assert {a.json()["error"] for a in answers if a.status_code == 400} == {"invalid_token"}
        winner = passwords[statuses.index(204)]
        assert await password_is(client, user["email"], winner)
        await mailbox.receive(user["email"])  # one notice
        notices = [m for m in await outbox(context) if m.recipient == user["email"]]
        assert len(notices) == 3  # verification, reset link, one notice


# Valid fields, and what replaces one of them in each hostile request.
HOSTILE_VALUES: list[Any] = [
    "\x00",
    "a\x00b",
    "\x1b[31m",
    "\x7f",
    "\x85",
    "\ud800",
    "a" * 10_000,
    12345,
    ["a"],
    {"a": 1},
    None,
    True,
]


class TestHostileInput:
    @pytest.fixture
    def settings_overrides(self, smtp_server: SMTPServer) -> dict[str, object]:
        return {**mailbox_overrides(smtp_server), "rate_limit_enabled": False}

    @pytest.mark.parametrize("value", HOSTILE_VALUES)
    async def test_forgot_refuses_and_sends_nothing(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext, value: Any
    ) -> None:
        user = await signed_up(client, mailbox)
        before = len(await outbox(context))
        for email in (value, f"{user['email']}{value}" if isinstance(value, str) else value):
            response = await post_json(client, "/password/forgot", {"email": email})
            assert 400 <= response.status_code < 500, response.text
            assert set(response.json()) == {"error", "error_description"}
        assert len(await outbox(context)) == before

    @pytest.mark.parametrize("field", ["token", "new_password"])
    @pytest.mark.parametrize("value", [*HOSTILE_VALUES, "short", "p" * 129])
    async def test_reset_refuses_and_changes_nothing(
        self, client: httpx.AsyncClient, mailbox: Mailbox, field: str, value: Any
    ) -> None:
        user = await signed_up(client, mailbox)
        assert (await forgot(client, user["email"])).status_code == 202
        token = await mailbox.token(user["email"])
        body: dict[str, Any] = {"token": token, "new_password": NEW_PASSWORD}
        body[field] = value
        if field == "token" and isinstance(value, str):
            body[field] = token + value  # the real token, spoilt
        response = await post_json(client, "/password/reset", body)
        assert 400 <= response.status_code < 500, response.text
        assert set(response.json()) == {"error", "error_description"}
        assert await password_is(client, user["email"], PASSWORD)
        assert (await reset(client, token)).status_code == 204  # still unused

    @pytest.mark.parametrize(
        "body", [{}, {"token": "pr_x"}, {"email": "a@example.com", "extra": 1}, [], "x", 1]
    )
    async def test_malformed_bodies(self, client: httpx.AsyncClient, body: Any) -> None:
        for path in ("/password/forgot", "/password/reset"):
            response = await post_json(client, path, body)
            assert response.status_code == 422, (path, response.text)
            assert response.json()["error"] == "invalid_request"


class TestDatabaseCopy:
    async def test_holds_no_usable_token(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user = await signed_up(client, mailbox)
        assert (await forgot(client, user["email"])).status_code == 202
        token = await mailbox.token(user["email"])

        async def all_sent() -> bool:
            return all(mail.state == MailState.SENT.value for mail in await outbox(context))

        # A mail waiting to be sent holds its link; once sent, the outbox forgets it.
        await eventually(all_sent)
        stored: list[str] = []
        async with context.engine.connect() as connection:
            for table in Base.metadata.sorted_tables:
                for row in await connection.execute(select(table)):
                    for value in row:
                        if isinstance(value, bytes):
                            stored += [
                                value.hex(),
                                base64.urlsafe_b64encode(value).decode().rstrip("="),
                                value.decode("latin-1"),
                            ]
                        elif value is not None:
                            stored.append(str(value))
        dump = "\n".join(stored)
        assert token[3:] not in dump
        assert token[3:20] not in dump

        candidates = {
            candidate
            for value in stored
            if 0 < len(value) <= 100
            for candidate in (value, f"pr_{value}"[:100])
        }
        for candidate in candidates:
            response = await post_json(
                client, "/password/reset", {"token": candidate, "new_password": NEW_PASSWORD}
            )
            assert response.status_code in (400, 422), (candidate, response.text)
        assert await password_is(client, user["email"], PASSWORD)
        assert (await reset(client, token)).status_code == 204


class TestRelayOutage:
    async def test_forgot_answers_at_once_and_the_mail_arrives_later(
        self,
        client: httpx.AsyncClient,
        mailbox: Mailbox,
        smtp_server: SMTPServer,
        context: AppContext,
        clock: FakeClock,
    ) -> None:
        user = await signed_up(client, mailbox)
        smtp_server.inbox.refuse = True
        response = await forgot(client, user["email"])
        assert response.status_code == 202

        async def refused_once() -> bool:
            mails = [m for m in await outbox(context) if m.state == MailState.PENDING.value]
            return len(mails) == 1 and mails[0].attempts >= 1

        await eventually(refused_once)  # the sender tried, at the commit, and was refused
        assert mailbox.to(user["email"]) == []
        smtp_server.inbox.refuse = False
        clock.advance(FIRST_RETRY.total_seconds() + 1)
        await context.mail_sender.run_once()
        token = token_of(await mailbox.receive(user["email"]))
        assert (await reset(client, token)).status_code == 204


class TestTwentyForgotAtOnce:
    async def test_the_recipient_limit_holds_and_every_link_sent_works_until_one_is_used(
        self, client: httpx.AsyncClient, mailbox: Mailbox
    ) -> None:
        user = await signed_up(client, mailbox)
        answers = await asyncio.gather(*(forgot(client, user["email"]) for _ in range(20)))
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [202] * 5 + [429] * 15  # AUTHAPI_RATE_LIMIT_MAIL_RECIPIENT 5/hour
        tokens = [token_of(await mailbox.receive(user["email"])) for _ in range(5)]
        # Each newer link voids the older ones; requests racing one another may leave
        # more than one alive, all mailed to the owner, and the first used kills the rest
        # (every reset token is bound to the password hash).
        used = [await reset(client, token) for token in reversed(tokens)]
        assert [answer.status_code for answer in used].count(204) == 1
        assert await password_is(client, user["email"], NEW_PASSWORD)
