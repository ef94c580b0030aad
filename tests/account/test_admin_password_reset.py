"""POST /admin/users/{id}/password-reset: an admin has a reset link mailed to a user
(the route is in users/admin_router.py; here for the SMTP server of this folder)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from authapi.audit.models import AuditEvent
from authapi.context import AppContext
from tests.support.factories import (
    bearer,
    login,
    make_admin,
    password_form,
    refresh,
    register,
    update_user,
)
from tests.support.mail import Mailbox, SMTPServer, mailbox_overrides

NEW_PASSWORD = "chosen by the user alone"


async def mail_reset(
    client: httpx.AsyncClient, admin: dict[str, Any], user_id: str
) -> httpx.Response:
    return await client.post(f"/admin/users/{user_id}/password-reset", headers=bearer(admin))


async def admin_actions(context: AppContext) -> list[AuditEvent]:
    async with context.sessionmaker() as db:
        query = select(AuditEvent).where(AuditEvent.event == "admin_action")
        return list(await db.scalars(query))


async def signed_up(client: httpx.AsyncClient, mailbox: Mailbox) -> dict[str, Any]:
    user = await register(client)
    await mailbox.receive(user["email"])  # the verification mail, out of the way
    return user


class TestAdminReset:
    async def test_mails_the_user_a_link_the_admin_never_sees(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        admin_user, admin = await make_admin(client, context)
        await mailbox.receive(admin_user["email"])
        user = await signed_up(client, mailbox)
        session = await login(client, user["email"])

        response = await mail_reset(client, admin, user["id"])
        assert response.status_code == 202, response.text
        assert response.content == b""
        token = await mailbox.token(user["email"])
        assert token.startswith("pr_")
        # Nothing ends until the user uses the link.
        refreshed = await refresh(client, session["refresh_token"])
        assert refreshed.status_code == 200

        done = await client.post(
            "/password/reset", json={"token": token, "new_password": NEW_PASSWORD}
        )
        assert done.status_code == 204, done.text
        assert (
            await client.post("/token", data=password_form(user["email"], NEW_PASSWORD))
        ).status_code == 200
        assert (await refresh(client, refreshed.json()["refresh_token"])).status_code == 400

        [action] = await admin_actions(context)
        assert action.user_id == uuid.UUID(user["id"])
        assert action.detail == f"password_reset_mailed by={admin_user['id']}"

    async def test_voids_the_users_older_link(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        _, admin = await make_admin(client, context)
        user = await signed_up(client, mailbox)
        assert (
            await client.post("/password/forgot", json={"email": user["email"]})
        ).status_code == 202
        older = await mailbox.token(user["email"])
        assert (await mail_reset(client, admin, user["id"])).status_code == 202
        newer = await mailbox.token(user["email"])
        body = {"token": older, "new_password": NEW_PASSWORD}
        assert (await client.post("/password/reset", json=body)).status_code == 400
        body["token"] = newer
        assert (await client.post("/password/reset", json=body)).status_code == 204

    async def test_an_unknown_user_is_404(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        _, admin = await make_admin(client, context)
        response = await mail_reset(client, admin, str(uuid.uuid4()))
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
        assert await admin_actions(context) == []

    async def test_a_disabled_user_is_409(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        _, admin = await make_admin(client, context)
        user = await signed_up(client, mailbox)
        await update_user(context, user, is_active=False)
        response = await mail_reset(client, admin, user["id"])
        assert response.status_code == 409
        assert response.json()["error"] == "account_disabled"
        assert await admin_actions(context) == []

    async def test_needs_the_admin_role(self, client: httpx.AsyncClient, mailbox: Mailbox) -> None:
        user = await signed_up(client, mailbox)
        tokens = await login(client, user["email"])
        assert (await mail_reset(client, tokens, user["id"])).status_code == 403
        anonymous = await client.post(f"/admin/users/{user['id']}/password-reset")
        assert anonymous.status_code == 401


class TestRecipientLimit:
    @pytest.fixture
    def settings_overrides(self, smtp_server: SMTPServer) -> dict[str, object]:
        return {**mailbox_overrides(smtp_server), "rate_limit_mail_recipient": "1/hour"}

    async def test_applies_to_admins_too(
        self, client: httpx.AsyncClient, mailbox: Mailbox, context: AppContext
    ) -> None:
        _, admin = await make_admin(client, context)
        user = await register(client)
        # The sign-up mail is not counted: only mails asked for are.
        assert (await mail_reset(client, admin, user["id"])).status_code == 202
        refused = await mail_reset(client, admin, user["id"])
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) > 0
        assert len(await admin_actions(context)) == 1
