"""Deleting one's account: DELETE /users/me. Over a real SMTP server, on both
databases."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, or_, select

from authapi.audit.models import AuditEvent
from authapi.context import AppContext
from authapi.mail.models import MailToken, OutboxMail
from authapi.sessions.models import LoginSession
from authapi.users.models import User
from tests.support.factories import (
    PASSWORD,
    bearer,
    login,
    make_admin,
    new_email,
    password_form,
    refresh_works,
    register,
    registered_login,
)
from tests.support.mail import Mailbox, SMTPServer, mailbox_overrides, text_of
from tests.support.settings import CHEAP_HASHES


async def delete_me(
    client: httpx.AsyncClient, tokens: dict[str, Any], password: Any = PASSWORD
) -> httpx.Response:
    return await client.request(
        "DELETE", "/users/me", json={"current_password": password}, headers=bearer(tokens)
    )


async def rows_of(context: AppContext, user: dict[str, Any]) -> dict[str, int]:
    """How many rows of each table hold the user (by id, or by address)."""
    user_id = uuid.UUID(user["id"])
    async with context.sessionmaker() as db:

        async def count(model: Any, *where: Any) -> int:
            return int(await db.scalar(select(func.count()).select_from(model).where(*where)) or 0)

        return {
            "users": await count(User, User.id == user_id),
            "sessions": await count(LoginSession, LoginSession.user_id == user_id),
            "mail_tokens": await count(MailToken, MailToken.user_id == user_id),
            "audit_events": await count(AuditEvent, AuditEvent.user_id == user_id),
        }


async def outbox_to(context: AppContext, *recipients: str) -> list[OutboxMail]:
    async with context.sessionmaker() as db:
        return list(
            await db.scalars(select(OutboxMail).where(OutboxMail.recipient.in_(recipients)))
        )


class TestDeletion:
    async def test_end_to_end(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user, tokens = await registered_login(client)
        other = await login(client, user["email"])
        await mailbox.receive(user["email"])  # the sign-up mail; its token is unused
        before = await rows_of(context, user)
        assert (before["users"], before["sessions"], before["mail_tokens"]) == (1, 2, 1)

        response = await delete_me(client, tokens)
        assert response.status_code == 204, response.text

        # Every session ended: refresh refused, access tokens refused at once.
        for session in (tokens, other):
            assert not await refresh_works(client, session)
            for path in ("/whoami", "/users/me", "/sessions"):
                assert (await client.get(path, headers=bearer(session))).status_code == 401
        # The rows are gone; the audit trail stays, with the id and never the address.
        after = await rows_of(context, user)
        assert (after["users"], after["sessions"], after["mail_tokens"]) == (0, 0, 0)
        assert after["audit_events"] >= before["audit_events"] + 1
        async with context.sessionmaker() as db:
            deleted = list(
                await db.scalars(select(AuditEvent).where(AuditEvent.event == "account_deleted"))
            )
            assert [e.user_id for e in deleted] == [uuid.UUID(user["id"])]
            assert deleted[0].session_id is not None
            mentions = await db.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(
                    or_(
                        AuditEvent.detail.contains(user["email"]),
                        AuditEvent.user_agent.contains(user["email"]),
                    )
                )
            )
            assert mentions == 0
        # A notice to the address, and the old mails to it are gone from the outbox.
        notice = await mailbox.receive(user["email"])
        assert "deleted" in str(notice["Subject"])
        assert "http" not in text_of(notice)
        assert len(await outbox_to(context, user["email"])) == 1
        # The password grant fails like for any unknown address; the address is free.
        refused = await client.post("/token", data=password_form(user["email"]))
        assert refused.json()["error"] == "invalid_grant"
        again = await register(client, user["email"])
        assert again["id"] != user["id"]
        await login(client, user["email"])

    async def test_a_wrong_password_is_403_and_changes_nothing(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user, tokens = await registered_login(client)
        await mailbox.receive(user["email"])
        before = await rows_of(context, user)
        response = await delete_me(client, tokens, password="not the password")
        assert response.status_code == 403
        assert response.json()["error"] == "invalid_credentials"
        assert await rows_of(context, user) == before
        assert await refresh_works(client, tokens)
        assert await context.mail_sender.run_once() == 0

    async def test_a_pending_change_goes_with_its_mails(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user, tokens = await registered_login(client)
        await mailbox.receive(user["email"])
        new = new_email()
        response = await client.post(
            "/users/me/email",
            json={"new_email": new, "current_password": PASSWORD},
            headers=bearer(tokens),
        )
        assert response.status_code == 202
        await mailbox.receive(new)
        assert len(await outbox_to(context, new)) == 1
        assert (await delete_me(client, tokens)).status_code == 204
        assert await outbox_to(context, new) == []
        # The new address was never the account's: it can sign up too.
        await register(client, new)

    async def test_needs_a_bearer_token(self, client: httpx.AsyncClient) -> None:
        response = await client.request("DELETE", "/users/me", json={"current_password": PASSWORD})
        assert response.status_code == 401

    @pytest.mark.parametrize(
        "body",
        [
            {"current_password": PASSWORD + "\x00"},
            {"current_password": "\x1b" + PASSWORD},
            {"current_password": PASSWORD + "\x85"},
            {"current_password": "x" * 10_000},
            {"current_password": 12345678},
            {"current_password": [PASSWORD]},
            {"current_password": None},
            {},
            {"current_password": PASSWORD, "force": True},
            [PASSWORD],
            None,
        ],
    )
    async def test_hostile_input_is_422_and_changes_nothing(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext, body: Any
    ) -> None:
        user, tokens = await registered_login(client)
        await mailbox.receive(user["email"])
        before = await rows_of(context, user)
        response = await client.request("DELETE", "/users/me", json=body, headers=bearer(tokens))
        assert response.status_code == 422, response.text
        assert set(response.json()) == {"error", "error_description"}
        assert await rows_of(context, user) == before
        assert await refresh_works(client, tokens)


class TestPasswordThrottle:
    @pytest.fixture
    def settings_overrides(self, smtp_server: SMTPServer) -> dict[str, object]:
        return {
            **mailbox_overrides(smtp_server),
            "rate_limit_login_failures": "3/15 minutes",
        }  # the login, then two guesses

    async def test_counts_before_the_password_is_verified(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user, tokens = await registered_login(client)
        for _ in range(2):
            assert (await delete_me(client, tokens, password="a wrong guess")).status_code == 403
        refused = await delete_me(client, tokens)  # the right password, too late
        assert refused.status_code == 429
        assert (await rows_of(context, user))["users"] == 1


class TestAdmins:
    async def test_the_last_active_admin_cannot_delete_their_account(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        admin, tokens = await make_admin(client, context)
        refused = await delete_me(client, tokens)
        assert refused.status_code == 409
        assert refused.json()["error"] == "own_account"
        assert (await rows_of(context, admin))["users"] == 1
        assert await refresh_works(client, tokens)

    async def test_a_wrong_password_comes_first(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        _, tokens = await make_admin(client, context)
        assert (await delete_me(client, tokens, password="not it")).status_code == 403

    async def test_an_admin_among_others_can(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        admin, tokens = await make_admin(client, context)
        other, other_tokens = await make_admin(client, context)
        assert (await delete_me(client, tokens)).status_code == 204
        assert (await rows_of(context, admin))["users"] == 0
        # Now the other one is the last.
        assert (await delete_me(client, other_tokens)).status_code == 409
        assert (await rows_of(context, other))["users"] == 1

    async def test_a_disabled_admin_does_not_count(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        _, tokens = await make_admin(client, context)
        other, other_tokens = await make_admin(client, context)
        response = await client.patch(
            f"/admin/users/{other['id']}", json={"is_active": False}, headers=bearer(tokens)
        )
        assert response.status_code == 200, response.text
        assert (await delete_me(client, tokens)).status_code == 409


CONCURRENT = 20
RACE_SETTINGS: dict[str, object] = {
    **CHEAP_HASHES,
    "rate_limit_enabled": False,
    "hash_queue": 2 * CONCURRENT,
}


@pytest.mark.parametrize("backend", ["postgresql"])
class TestConcurrency:
    @pytest.fixture
    def settings_overrides(self, smtp_server: SMTPServer) -> dict[str, object]:
        return {**mailbox_overrides(smtp_server), **RACE_SETTINGS}

    async def test_concurrent_deletions_delete_once(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        user, tokens = await registered_login(client)
        await mailbox.receive(user["email"])
        responses = await asyncio.gather(*(delete_me(client, tokens) for _ in range(CONCURRENT)))
        statuses = sorted(r.status_code for r in responses)
        # One deletes; the others find the account gone, as any later request would.
        assert statuses == [204] + [401] * (CONCURRENT - 1), statuses
        after = await rows_of(context, user)
        assert (after["users"], after["sessions"], after["mail_tokens"]) == (0, 0, 0)
        async with context.sessionmaker() as db:
            deleted = await db.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.event == "account_deleted")
            )
        assert deleted == 1
        await mailbox.receive(user["email"])
        assert len(await outbox_to(context, user["email"])) == 1

    async def test_two_admins_deleting_themselves_at_once_leave_one(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        first, first_tokens = await make_admin(client, context)
        second, second_tokens = await make_admin(client, context)
        responses = await asyncio.gather(
            delete_me(client, first_tokens), delete_me(client, second_tokens)
        )
        assert sorted(r.status_code for r in responses) == [204, 409]
        left = [(await rows_of(context, admin))["users"] for admin in (first, second)]
        assert sorted(left) == [0, 1]
