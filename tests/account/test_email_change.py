"""Changing the address: POST /users/me/email mails a link to the new address and a
notice to the old one; posting the link's token to /email/verify makes the change.
Over a real SMTP server, on both databases."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from authapi.audit.models import AuditEvent
from authapi.context import AppContext
from authapi.mail import tokens as mail_tokens
from authapi.mail.models import MailToken
from authapi.mail.tokens import Purpose
from authapi.users.models import User
from tests.support.factories import (
    PASSWORD,
    bearer,
    login,
    new_email,
    password_form,
    refresh_works,
    register,
    registered_login,
    update_user,
)
from tests.support.mail import Mailbox, SMTPServer, mailbox_overrides, text_of, token_of
from tests.support.settings import CHEAP_HASHES


async def request_change(
    client: httpx.AsyncClient,
    tokens: dict[str, Any],
    new: str,
    password: str = PASSWORD,
) -> httpx.Response:
    return await client.post(
        "/users/me/email",
        json={"new_email": new, "current_password": password},
        headers=bearer(tokens),
    )


async def verify(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/email/verify", json={"token": token})


async def events(context: AppContext, name: str) -> list[AuditEvent]:
    async with context.sessionmaker() as db:
        return list(await db.scalars(select(AuditEvent).where(AuditEvent.event == name)))


async def stored_email(context: AppContext, user: dict[str, Any]) -> str | None:
    async with context.sessionmaker() as db:
        return await db.scalar(select(User.email).where(User.id == uuid.UUID(user["id"])))


async def change_tokens(context: AppContext, user: dict[str, Any]) -> int:
    async with context.sessionmaker() as db:
        count = await db.scalar(
            select(func.count())
            .select_from(MailToken)
            .where(
                MailToken.user_id == uuid.UUID(user["id"]),
                MailToken.purpose == Purpose.EMAIL_CHANGE.value,
            )
        )
    return int(count or 0)


async def signed_up(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new user, their sign-up mail taken out of the inbox, and a session of theirs."""
    user, tokens = await registered_login(client)
    await mailbox.receive(user["email"])
    return user, tokens


class TestChange:
    async def test_end_to_end(
        self,
        client: httpx.AsyncClient,
        mailbox: Mailbox,
        context: AppContext,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="authapi")  # the app's own logs, all of them
        user, tokens = await signed_up(client, mailbox)
        other = await login(client, user["email"])
        new = new_email()
        response = await request_change(client, tokens, new)
        assert response.status_code == 202, response.text
        assert response.content == b""

        confirmation = await mailbox.receive(new)
        assert new in str(confirmation["Subject"]) + text_of(confirmation)
        token = token_of(confirmation)
        assert token.startswith("ev_")
        notice = await mailbox.receive(user["email"])
        assert new in text_of(notice)
        assert "http" not in text_of(notice)  # no link to the old address

        # Nothing changes before the token is posted.
        assert await stored_email(context, user) == user["email"]
        assert (await client.get("/users/me", headers=bearer(tokens))).json()["email"] == user[
            "email"
        ]
        await login(client, user["email"])
        assert (await client.post("/token", data=password_form(new))).status_code == 400

        confirmed = await verify(client, token)
        assert confirmed.status_code == 200, confirmed.text
        assert confirmed.json()["email"] == new
        assert confirmed.json()["email_verified"] is True
        assert await stored_email(context, user) == new

        # Every session ended: refresh refused, access tokens refused at once.
        for session in (tokens, other):
            assert not await refresh_works(client, session)
            assert (await client.get("/users/me", headers=bearer(session))).status_code == 401
        # The new address logs in and shows at once; the old one is no account.
        fresh = await login(client, new)
        me = (await client.get("/users/me", headers=bearer(fresh))).json()
        assert (me["email"], me["email_verified"]) == (new, True)
        old = await client.post("/token", data=password_form(user["email"]))
        assert old.status_code == 400
        assert old.json()["error"] == "invalid_grant"

        requested = await events(context, "email_change_requested")
        assert [(e.user_id, e.session_id is not None) for e in requested] == [
            (uuid.UUID(user["id"]), True)
        ]
        assert [e.user_id for e in await events(context, "email_changed")] == [
            uuid.UUID(user["id"])
        ]
        assert (await verify(client, token)).json()["error"] == "invalid_token"  # used up
        app_logs = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("authapi"))
        assert token.removeprefix("ev_") not in app_logs

    async def test_a_newer_request_voids_the_older_link(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user, tokens = await signed_up(client, mailbox)
        first, second = new_email(), new_email()
        assert (await request_change(client, tokens, first)).status_code == 202
        assert (await request_change(client, tokens, second)).status_code == 202
        first_token = await mailbox.token(first)
        second_token = await mailbox.token(second)
        refused = await verify(client, first_token)
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_token"
        assert await stored_email(context, user) == user["email"]
        assert (await verify(client, second_token)).json()["email"] == second

    async def test_the_link_dies_when_the_address_changes_otherwise(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user, tokens = await signed_up(client, mailbox)
        new = new_email()
        assert (await request_change(client, tokens, new)).status_code == 202
        token = await mailbox.token(new)
        elsewhere = new_email()
        await update_user(context, user, email=elsewhere)  # an operator's change
        refused = await verify(client, token)
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_token"
        assert await stored_email(context, user) == elsewhere

    async def test_the_change_voids_every_other_link_of_the_account(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        """A reset link mailed to the old address must not outlive the address."""
        user, tokens = await signed_up(client, mailbox)
        async with context.sessionmaker() as db:
            account = await db.get(User, uuid.UUID(user["id"]))
            assert account is not None
            await mail_tokens.issue(
                db,
                account,
                Purpose.PASSWORD_RESET,
                key=context.mail_tokens,
                settings=context.settings,
                now=context.clock.now(),
            )
            await db.commit()
        new = new_email()
        assert (await request_change(client, tokens, new)).status_code == 202
        assert (await verify(client, await mailbox.token(new))).status_code == 200
        async with context.sessionmaker() as db:
            left = await db.scalar(
                select(func.count())
                .select_from(MailToken)
                .where(MailToken.user_id == uuid.UUID(user["id"]))
            )
        assert left == 0


class TestRefusals:
    async def test_a_wrong_password_is_403_and_sends_nothing(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user, tokens = await signed_up(client, mailbox)
        new = new_email()
        response = await request_change(client, tokens, new, password="not the password")
        assert response.status_code == 403
        assert response.json()["error"] == "invalid_credentials"
        assert await context.mail_sender.run_once() == 0
        assert mailbox.to(new) == mailbox.to(user["email"]) == []
        assert await change_tokens(context, user) == 0
        assert await events(context, "email_change_requested") == []

    async def test_a_taken_address_is_409_at_the_request(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user, tokens = await signed_up(client, mailbox)
        taken = await register(client)
        await mailbox.receive(taken["email"])
        # In another spelling: the address is normalised as at sign-up.
        response = await request_change(client, tokens, taken["email"].upper())
        assert response.status_code == 409
        assert response.json()["error"] == "email_taken"
        assert await context.mail_sender.run_once() == 0
        assert mailbox.to(taken["email"]) == mailbox.to(user["email"]) == []
        assert await change_tokens(context, user) == 0

    async def test_an_address_taken_before_the_confirmation_is_409(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user, tokens = await signed_up(client, mailbox)
        new = new_email()
        assert (await request_change(client, tokens, new)).status_code == 202
        token = await mailbox.token(new)
        await register(client, new)  # someone signs up with it meanwhile
        refused = await verify(client, token)
        assert refused.status_code == 409
        assert refused.json()["error"] == "email_taken"
        # Nothing changed: the address, the sessions, the trail.
        assert await stored_email(context, user) == user["email"]
        assert await refresh_works(client, tokens)
        assert await events(context, "email_changed") == []

    async def test_the_same_address_is_400(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user, tokens = await signed_up(client, mailbox)
        response = await request_change(client, tokens, f"  {user['email'].upper()} ")
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"
        assert await change_tokens(context, user) == 0

    async def test_needs_a_bearer_token(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/users/me/email", json={"new_email": new_email(), "current_password": PASSWORD}
        )
        assert response.status_code == 401

    @pytest.mark.parametrize(
        "body",
        [
            {"new_email": "a\x00b@example.com", "current_password": PASSWORD},
            {"new_email": "ab\n@example.com", "current_password": PASSWORD},
            {"new_email": "a\x85b@example.com", "current_password": PASSWORD},
            {"new_email": "x" * 10_000 + "@example.com", "current_password": PASSWORD},
            {"new_email": "someone@example.com", "current_password": "x" * 10_000},
            {"new_email": "someone@example.com", "current_password": PASSWORD + "\x00"},
            {"new_email": "someone@example.test", "current_password": PASSWORD},
            {"new_email": "not an address", "current_password": PASSWORD},
            {"new_email": ["someone@example.com"], "current_password": PASSWORD},
            {"new_email": "someone@example.com", "current_password": 12345678},
            {"new_email": None, "current_password": PASSWORD},
            {"new_email": "someone@example.com"},
            {"new_email": "someone@example.com", "current_password": PASSWORD, "role": "admin"},
        ],
    )
    async def test_hostile_input_is_422_and_changes_nothing(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext, body: Any
    ) -> None:
        user, tokens = await signed_up(client, mailbox)
        response = await client.post("/users/me/email", json=body, headers=bearer(tokens))
        assert response.status_code == 422, response.text
        assert set(response.json()) == {"error", "error_description"}
        assert await change_tokens(context, user) == 0
        assert await context.mail_sender.run_once() == 0


class TestRecipientLimit:
    @pytest.fixture
    def settings_overrides(self, smtp_server: SMTPServer) -> dict[str, object]:
        return {**mailbox_overrides(smtp_server), "rate_limit_mail_recipient": "1/hour"}

    async def test_the_new_address_is_not_flooded(
        self, client: httpx.AsyncClient, mailbox: Mailbox
    ) -> None:
        _, tokens = await signed_up(client, mailbox)
        new = new_email()
        assert (await request_change(client, tokens, new)).status_code == 202
        refused = await request_change(client, tokens, new)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) > 0


CONCURRENT = 20


@pytest.mark.parametrize("backend", ["postgresql"])
class TestConcurrency:
    @pytest.fixture
    def settings_overrides(self, smtp_server: SMTPServer) -> dict[str, object]:
        return {
            **mailbox_overrides(smtp_server),
            **CHEAP_HASHES,
            "rate_limit_enabled": False,
            "hash_queue": 2 * CONCURRENT,
        }

    async def test_concurrent_requests_leave_one_valid_link(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user, tokens = await signed_up(client, mailbox)
        addresses = [new_email() for _ in range(CONCURRENT)]
        responses = await asyncio.gather(*(request_change(client, tokens, a) for a in addresses))
        assert [r.status_code for r in responses] == [202] * CONCURRENT
        assert await change_tokens(context, user) == 1
        links = [await mailbox.token(address) for address in addresses]
        results = [(await verify(client, token)).status_code for token in links]
        assert sorted(results) == [200] + [400] * (CONCURRENT - 1)
        assert await stored_email(context, user) == addresses[results.index(200)]

    async def test_concurrent_confirmations_change_the_address_once(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user, tokens = await signed_up(client, mailbox)
        new = new_email()
        assert (await request_change(client, tokens, new)).status_code == 202
        token = await mailbox.token(new)
        responses = await asyncio.gather(*(verify(client, token) for _ in range(CONCURRENT)))
        assert sorted(r.status_code for r in responses) == [200] + [400] * (CONCURRENT - 1)
        assert await stored_email(context, user) == new
        assert len(await events(context, "email_changed")) == 1


class TestPasswordThrottle:
    @pytest.fixture
    def settings_overrides(self, smtp_server: SMTPServer) -> dict[str, object]:
        return {
            **mailbox_overrides(smtp_server),
            "rate_limit_login_failures": "3/15 minutes",
        }  # the login, then two guesses

    async def test_counts_before_the_password_is_verified(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        """A stolen access token is no way around the login throttle."""
        user, tokens = await signed_up(client, mailbox)
        for _ in range(2):
            wrong = await request_change(client, tokens, new_email(), password="a wrong guess")
            assert wrong.status_code == 403
        refused = await request_change(client, tokens, new_email())  # the right password
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) > 0
        assert [e.user_id for e in await events(context, "rate_limited")] == [uuid.UUID(user["id"])]
        assert await change_tokens(context, user) == 0
