"""Verifying an address: the mail at sign-up, POST /email/verification and
/email/verify, and AUTHAPI_REQUIRE_VERIFIED_EMAIL, over a real SMTP server."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from authapi.audit.models import AuditEvent
from authapi.context import AppContext
from tests.support.factories import PASSWORD, bearer, login, new_email, password_form, register
from tests.support.mail import Mailbox, SMTPServer, link_of, mailbox_overrides, token_of


async def events(context: AppContext, name: str) -> list[AuditEvent]:
    async with context.sessionmaker() as db:
        return list(await db.scalars(select(AuditEvent).where(AuditEvent.event == name)))


async def verify(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/email/verify", json={"token": token})


async def me(client: httpx.AsyncClient, tokens: dict[str, Any]) -> dict[str, Any]:
    response = await client.get("/users/me", headers=bearer(tokens))
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


class TestSignUp:
    async def test_mails_a_link_that_verifies_the_address(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user = await register(client)
        assert user["email_verified"] is False
        tokens = await login(client, user["email"])
        assert (await me(client, tokens))["email_verified"] is False  # now cached

        message = await mailbox.receive(user["email"])
        assert message["From"] == context.settings.mail_from
        token = token_of(message)
        assert token.startswith("ev_")
        response = await verify(client, token)
        assert response.status_code == 200, response.text
        assert response.json()["email_verified"] is True
        # The cached profile is dropped: the very session sees the change.
        assert (await me(client, tokens))["email_verified"] is True
        assert [e.user_id for e in await events(context, "email_verified")] == [
            uuid.UUID(user["id"])
        ]

    async def test_a_token_works_once(self, client: httpx.AsyncClient, mailbox: Mailbox) -> None:
        user = await register(client)
        token = await mailbox.token(user["email"])
        assert (await verify(client, token)).status_code == 200
        again = await verify(client, token)
        assert again.status_code == 400
        assert again.json()["error"] == "invalid_token"

    async def test_twenty_at_once_use_it_once(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user = await register(client)
        token = await mailbox.token(user["email"])
        answers = await asyncio.gather(*(verify(client, token) for _ in range(20)))
        assert sorted(a.status_code for a in answers) == [200] + [400] * 19
        assert len(await events(context, "email_verified")) == 1

    async def test_the_link_points_at_the_issuer_whatever_the_request_says(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        email = new_email()
        response = await client.post(
            "/users",
            json={"email": email, "password": PASSWORD},
            headers={
                "Host": "evil.example",
                "X-Forwarded-Host": "evil.example",
                "Forwarded": "host=evil.example;proto=https",
            },
        )
        assert response.status_code == 201
        link = link_of(await mailbox.receive(email))
        assert link.startswith(f"{context.settings.issuer}/email/verify#token=ev_")
        assert "evil" not in link


class TestAppUrl:
    @pytest.fixture
    def settings_overrides(self, smtp_server: SMTPServer) -> dict[str, object]:
        return {**mailbox_overrides(smtp_server), "app_url": "https://app.example/"}

    async def test_links_point_at_the_app(
        self, client: httpx.AsyncClient, mailbox: Mailbox
    ) -> None:
        user = await register(client)
        link = link_of(await mailbox.receive(user["email"]))
        assert link.startswith("https://app.example/email/verify#token=ev_")


class TestRequestingAgain:
    async def test_a_new_link_voids_the_old_one(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user = await register(client)
        first = await mailbox.token(user["email"])
        tokens = await login(client, user["email"])
        response = await client.post("/email/verification", headers=bearer(tokens))
        assert response.status_code == 202
        assert response.content == b""
        second = await mailbox.token(user["email"])
        assert second != first
        assert (await verify(client, first)).json()["error"] == "invalid_token"
        assert (await verify(client, second)).status_code == 200
        assert len(await events(context, "email_verification_requested")) == 1

    async def test_a_verified_address_gets_no_mail(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user = await register(client)
        assert (await verify(client, await mailbox.token(user["email"]))).status_code == 200
        tokens = await login(client, user["email"])
        response = await client.post("/email/verification", headers=bearer(tokens))
        assert response.status_code == 202
        assert await context.mail_sender.run_once() == 0
        assert mailbox.to(user["email"]) == []

    async def test_needs_a_bearer_token(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/email/verification")
        assert response.status_code == 401


class TestRecipientLimit:
    @pytest.fixture
    def settings_overrides(self, smtp_server: SMTPServer) -> dict[str, object]:
        return {**mailbox_overrides(smtp_server), "rate_limit_mail_recipient": "2/hour"}

    async def test_no_mailbox_is_flooded(self, client: httpx.AsyncClient, mailbox: Mailbox) -> None:
        user = await register(client)
        tokens = await login(client, user["email"])
        for _ in range(2):
            response = await client.post("/email/verification", headers=bearer(tokens))
            assert response.status_code == 202
        refused = await client.post("/email/verification", headers=bearer(tokens))
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) > 0


class TestRefusedTokens:
    @pytest.mark.parametrize(
        "token", ["ev_" + "A" * 43, "pr_" + "A" * 43, "nonsense", "ev_", "x" * 100]
    )
    async def test_are_400_invalid_token(self, client: httpx.AsyncClient, token: str) -> None:
        response = await verify(client, token)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_token"

    async def test_are_recorded_once_a_minute_per_address(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        for _ in range(5):
            assert (await verify(client, "ev_" + "B" * 43)).status_code == 400
        refused = await events(context, "mail_token_refused")
        assert len(refused) == 1
        assert refused[0].user_id is None

    @pytest.mark.parametrize("token", ["", "ev_\x00abc", "x" * 101])
    async def test_malformed_tokens_are_422(self, client: httpx.AsyncClient, token: str) -> None:
        assert (await verify(client, token)).status_code == 422


class TestRequireVerifiedEmail:
    @pytest.fixture
    def settings_overrides(self, smtp_server: SMTPServer) -> dict[str, object]:
        return {**mailbox_overrides(smtp_server), "require_verified_email": True}

    async def test_refuses_the_password_grant_until_verified(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user = await register(client)
        refused = await client.post("/token", data=password_form(user["email"]))
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_grant"
        assert "verified" in refused.json()["error_description"]
        failed = await events(context, "login_failed")
        assert [e.detail for e in failed] == ["email_not_verified"]

        assert (await verify(client, await mailbox.token(user["email"]))).status_code == 200
        await login(client, user["email"])

    async def test_a_wrong_password_says_nothing_of_verification(
        self, client: httpx.AsyncClient
    ) -> None:
        user = await register(client)
        refused = await client.post("/token", data=password_form(user["email"], "not the password"))
        unknown = await client.post("/token", data=password_form(new_email(), "not the password"))
        assert refused.status_code == unknown.status_code == 400
        assert refused.json() == unknown.json()
