"""Resetting a forgotten password: POST /password/forgot and /password/reset end to
end, the link read out of the mail a real SMTP server received; and the notice that
POST /users/me/password now mails."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from authapi import logs
from authapi.audit.models import AuditEvent
from authapi.context import AppContext
from authapi.mail.models import OutboxMail
from authapi.sessions.models import LoginSession
from tests.support.clock import FakeClock
from tests.support.factories import (
    PASSWORD,
    bearer,
    login,
    password_form,
    refresh,
    register,
    update_user,
)
from tests.support.mail import Mailbox, SMTPServer, link_of, mailbox_overrides, text_of, token_of

NEW_PASSWORD = "a brand new passphrase"


async def forgot(client: httpx.AsyncClient, email: str, **headers: str) -> httpx.Response:
    return await client.post("/password/forgot", json={"email": email}, headers=headers)


async def reset(
    client: httpx.AsyncClient, token: str, password: str = NEW_PASSWORD
) -> httpx.Response:
    return await client.post("/password/reset", json={"token": token, "new_password": password})


async def signed_up(client: httpx.AsyncClient, mailbox: Mailbox) -> dict[str, Any]:
    """A new user, whose verification mail is out of the way."""
    user = await register(client)
    await mailbox.receive(user["email"])
    return user


async def reset_token(client: httpx.AsyncClient, mailbox: Mailbox, email: str) -> str:
    response = await forgot(client, email)
    assert response.status_code == 202, response.text
    return await mailbox.token(email)


async def events(context: AppContext, name: str) -> list[AuditEvent]:
    async with context.sessionmaker() as db:
        return list(await db.scalars(select(AuditEvent).where(AuditEvent.event == name)))


async def queued_for(context: AppContext, recipient: str) -> int:
    """How many mails the outbox has ever held for `recipient` (sent ones included)."""
    async with context.sessionmaker() as db:
        rows = await db.scalars(select(OutboxMail.id).where(OutboxMail.recipient == recipient))
        return len(list(rows))


def refused_token(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_token"


async def password_is(client: httpx.AsyncClient, email: str, password: str) -> bool:
    return (await client.post("/token", data=password_form(email, password))).status_code == 200


class TestReset:
    async def test_the_mailed_link_sets_a_new_password(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user = await signed_up(client, mailbox)
        response = await forgot(client, user["email"])
        assert response.status_code == 202
        assert response.content == b""
        message = await mailbox.receive(user["email"])
        assert "Reset" in str(message["Subject"])
        assert "30 minutes" in text_of(message)
        link = link_of(message)
        assert link.startswith(f"{context.settings.issuer}/password/reset#token=pr_")

        done = await reset(client, token_of(message))
        assert done.status_code == 204, done.text
        assert done.content == b""
        assert await password_is(client, user["email"], NEW_PASSWORD)
        assert not await password_is(client, user["email"], PASSWORD)

    async def test_every_session_ends_at_once(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user = await signed_up(client, mailbox)
        sessions = [await login(client, user["email"]) for _ in range(2)]
        for tokens in sessions:  # the profile is cached, the claims verified once
            assert (await client.get("/users/me", headers=bearer(tokens))).status_code == 200
            assert (await client.get("/whoami", headers=bearer(tokens))).status_code == 200

        assert (
            await reset(client, await reset_token(client, mailbox, user["email"]))
        ).status_code == 204
        for tokens in sessions:
            refused = await refresh(client, tokens["refresh_token"])
            assert refused.status_code == 400
            assert refused.json()["error"] == "invalid_grant"
            for path in ("/users/me", "/whoami"):
                response = await client.get(path, headers=bearer(tokens))
                assert response.status_code == 401, (path, response.text)
                assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
        async with context.sessionmaker() as db:
            reasons = await db.scalars(
                select(LoginSession.revoked_reason).where(
                    LoginSession.user_id == uuid.UUID(user["id"])
                )
            )
            assert list(reasons) == ["password_reset", "password_reset"]

    async def test_the_address_counts_as_verified(
        self, client: httpx.AsyncClient, mailbox: Mailbox
    ) -> None:
        user = await signed_up(client, mailbox)
        assert user["email_verified"] is False
        assert (
            await reset(client, await reset_token(client, mailbox, user["email"]))
        ).status_code == 204
        tokens = await login(client, user["email"], NEW_PASSWORD)
        assert (await client.get("/users/me", headers=bearer(tokens))).json()["email_verified"]

    async def test_a_notice_is_mailed(self, client: httpx.AsyncClient, mailbox: Mailbox) -> None:
        user = await signed_up(client, mailbox)
        assert (
            await reset(client, await reset_token(client, mailbox, user["email"]))
        ).status_code == 204
        notice = await mailbox.receive(user["email"])
        assert "password was changed" in str(notice["Subject"])
        assert "token=" not in text_of(notice)

    async def test_is_recorded_without_address_or_token(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user = await signed_up(client, mailbox)
        token = await reset_token(client, mailbox, user["email"])
        assert (await reset(client, token)).status_code == 204
        requested = await events(context, "password_reset_requested")
        completed = await events(context, "password_reset")
        assert [e.user_id for e in requested] == [uuid.UUID(user["id"])]
        assert [e.user_id for e in completed] == [uuid.UUID(user["id"])]
        assert len(await events(context, "email_verified")) == 1
        async with context.sessionmaker() as db:
            recorded = list(await db.scalars(select(AuditEvent)))
        for event in recorded:
            text = f"{event.detail} {event.user_agent}"
            assert user["email"] not in text
            assert token not in text
            assert token[3:] not in text

    async def test_the_link_ignores_the_request_host(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user = await signed_up(client, mailbox)
        hostile = {
            "Host": "evil.example",
            "X-Forwarded-Host": "evil.example",
            "Forwarded": "host=evil.example;proto=https",
        }
        assert (await forgot(client, user["email"], **hostile)).status_code == 202
        link = link_of(await mailbox.receive(user["email"]))
        assert link.startswith(f"{context.settings.issuer}/password/reset#token=pr_")
        assert "evil" not in link

    async def test_a_disabled_account_gets_no_mail(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user = await signed_up(client, mailbox)
        await update_user(context, user, is_active=False)
        response = await forgot(client, user["email"])
        assert response.status_code == 202
        assert response.content == b""
        assert await queued_for(context, user["email"]) == 1  # the verification mail only
        recorded = await events(context, "password_reset_requested")
        assert [e.user_id for e in recorded] == [uuid.UUID(user["id"])]


class TestLogs:
    async def test_hold_no_link_token_or_address(
        self, client: httpx.AsyncClient, mailbox: Mailbox, caplog: pytest.LogCaptureFixture
    ) -> None:
        for name in logs.APP_LOGGERS:  # what AUTHAPI_LOG_LEVEL=DEBUG turns on
            caplog.set_level(logging.DEBUG, logger=name)
        user = await signed_up(client, mailbox)
        token = await reset_token(client, mailbox, user["email"])
        assert (await reset(client, token)).status_code == 204
        refused_token(await reset(client, token))
        await mailbox.receive(user["email"])  # the notice: every mail went through
        formatter = logs.JsonFormatter()
        text = "\n".join(formatter.format(record) for record in caplog.records)
        assert any(record.name == "authapi.access" for record in caplog.records)
        for secret in (token, token[3:], token[3:27], NEW_PASSWORD, "$argon2"):
            assert secret not in text


class TestTokens:
    async def test_works_once(self, client: httpx.AsyncClient, mailbox: Mailbox) -> None:
        user = await signed_up(client, mailbox)
        token = await reset_token(client, mailbox, user["email"])
        assert (await reset(client, token)).status_code == 204
        refused_token(await reset(client, token, "yet another passphrase"))
        assert await password_is(client, user["email"], NEW_PASSWORD)

    async def test_a_newer_link_voids_the_older(
        self, client: httpx.AsyncClient, mailbox: Mailbox
    ) -> None:
        user = await signed_up(client, mailbox)
        first = await reset_token(client, mailbox, user["email"])
        second = await reset_token(client, mailbox, user["email"])
        assert first != second
        refused_token(await reset(client, first))
        assert await password_is(client, user["email"], PASSWORD)
        assert (await reset(client, second)).status_code == 204

    async def test_a_password_change_voids_it(
        self, client: httpx.AsyncClient, mailbox: Mailbox
    ) -> None:
        user = await signed_up(client, mailbox)
        token = await reset_token(client, mailbox, user["email"])
        tokens = await login(client, user["email"])
        changed = await client.post(
            "/users/me/password",
            json={"current_password": PASSWORD, "new_password": "changed by the owner"},
            headers=bearer(tokens),
        )
        assert changed.status_code == 204, changed.text
        refused_token(await reset(client, token))
        assert await password_is(client, user["email"], "changed by the owner")

    async def test_a_disabled_account_cannot_use_it(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user = await signed_up(client, mailbox)
        token = await reset_token(client, mailbox, user["email"])
        await update_user(context, user, is_active=False)
        refused_token(await reset(client, token))
        await update_user(context, user, is_active=True)
        assert await password_is(client, user["email"], PASSWORD)

    async def test_a_verification_token_is_no_reset_token(
        self, client: httpx.AsyncClient, mailbox: Mailbox
    ) -> None:
        user = await register(client)
        verification = await mailbox.token(user["email"])
        refused_token(await reset(client, verification))
        reset_link = await reset_token(client, mailbox, user["email"])
        verify = await client.post("/email/verify", json={"token": reset_link})
        refused_token(verify)
        assert (await reset(client, reset_link)).status_code == 204

    @pytest.mark.parametrize("token", ["pr_" + "A" * 43, "ev_" + "A" * 43, "nonsense", "pr_"])
    async def test_made_up_tokens_are_refused_and_recorded_once(
        self, client: httpx.AsyncClient, context: AppContext, token: str
    ) -> None:
        for _ in range(3):
            refused_token(await reset(client, token))
        refused = await events(context, "mail_token_refused")
        assert [e.user_id for e in refused] == [None]


class TestExpiry:
    @pytest.fixture
    def settings_overrides(self, smtp_server: SMTPServer) -> dict[str, object]:
        return {**mailbox_overrides(smtp_server), "password_reset_ttl": 60}

    async def test_an_expired_link_is_refused(
        self, client: httpx.AsyncClient, mailbox: Mailbox, clock: FakeClock
    ) -> None:
        user = await signed_up(client, mailbox)
        response = await forgot(client, user["email"])
        assert response.status_code == 202
        message = await mailbox.receive(user["email"])
        assert "1 minute" in text_of(message)
        clock.advance(61)
        refused_token(await reset(client, token_of(message)))
        assert await password_is(client, user["email"], PASSWORD)

    async def test_a_link_works_until_it_expires(
        self, client: httpx.AsyncClient, mailbox: Mailbox, clock: FakeClock
    ) -> None:
        user = await signed_up(client, mailbox)
        token = await reset_token(client, mailbox, user["email"])
        clock.advance(59)
        assert (await reset(client, token)).status_code == 204


class TestPasswordChangeNotice:
    async def test_a_change_mails_a_notice(
        self, client: httpx.AsyncClient, mailbox: Mailbox
    ) -> None:
        user = await signed_up(client, mailbox)
        tokens = await login(client, user["email"])
        changed = await client.post(
            "/users/me/password",
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            headers=bearer(tokens),
        )
        assert changed.status_code == 204, changed.text
        notice = await mailbox.receive(user["email"])
        assert "password was changed" in str(notice["Subject"])

    async def test_a_wrong_current_password_mails_nothing(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user = await signed_up(client, mailbox)
        tokens = await login(client, user["email"])
        refused = await client.post(
            "/users/me/password",
            json={"current_password": "not the password", "new_password": NEW_PASSWORD},
            headers=bearer(tokens),
        )
        assert refused.status_code == 403
        assert refused.json()["error"] == "invalid_credentials"
        assert await queued_for(context, user["email"]) == 1  # the verification mail only
