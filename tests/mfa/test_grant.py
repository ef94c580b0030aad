"""The password grant for an account with MFA, and the MFA grant of /token.

Engineer "codes"' TOTP checker is not merged yet: `FixedCode` stands in for it (one right
code), so these tests are about the mfa_token and the grant, not about TOTP."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from authapi import auth_methods
from authapi.audit.models import AuditEvent
from authapi.auth_methods import AuthMethods
from authapi.client_address import Requester
from authapi.context import AppContext
from authapi.errors import InvalidGrant
from authapi.mfa.models import MfaToken
from authapi.sessions.models import LoginSession
from tests.support.clock import FakeClock
from tests.support.factories import bearer, password_form, refresh, register, update_user

MFA = "urn:authapi:params:oauth:grant-type:mfa"
RIGHT = "123456"


class FixedCode:
    """A code checker that knows one right code."""

    async def verify(
        self, db: Any, user_id: uuid.UUID, code: str, *, now: datetime, requester: Requester
    ) -> AuthMethods:
        if code != RIGHT:
            raise InvalidGrant()
        return (auth_methods.ONE_TIME_CODE,)


async def count(context: AppContext, table: Any) -> int:
    async with context.sessionmaker() as db:
        return int(await db.scalar(select(func.count()).select_from(table)) or 0)


async def events(context: AppContext, event: str) -> int:
    async with context.sessionmaker() as db:
        query = select(func.count()).select_from(AuditEvent).where(AuditEvent.event == event)
        return int(await db.scalar(query) or 0)


async def mfa_user(client: httpx.AsyncClient, context: AppContext) -> dict[str, Any]:
    context.codes = FixedCode()
    user = await register(client)
    await update_user(context, user, mfa_enabled=True)
    return user


async def challenged(client: httpx.AsyncClient, user: dict[str, Any]) -> str:
    response = await client.post("/token", data=password_form(user["email"]))
    assert response.status_code == 400
    token: str = response.json()["mfa_token"]
    return token


async def second_step(client: httpx.AsyncClient, mfa_token: str, otp: str) -> httpx.Response:
    return await client.post("/token", data={"grant_type": MFA, "mfa_token": mfa_token, "otp": otp})


class TestPasswordGrantWithMfa:
    async def test_right_password_answers_mfa_required_and_no_session(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user = await mfa_user(client, context)
        response = await client.post("/token", data=password_form(user["email"]))
        assert response.status_code == 400
        body = response.json()
        assert set(body) == {"error", "error_description", "mfa_token", "mfa_methods"}
        assert body["error"] == "mfa_required"
        assert body["mfa_token"].startswith("mfa_")
        assert isinstance(body["mfa_methods"], list)
        assert "access_token" not in body
        assert await count(context, LoginSession) == 0
        # Kept although the answer is an error: the token's row (by its hash only).
        async with context.sessionmaker() as db:
            stored = (await db.scalars(select(MfaToken))).one()
        assert stored.token_hash != body["mfa_token"]
        assert body["mfa_token"] not in stored.token_hash
        assert await events(context, "mfa_challenged") == 1
        assert "authapi_device" not in response.cookies

    async def test_wrong_password_answers_as_for_any_user(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user = await mfa_user(client, context)
        plain = await register(client)
        with_mfa = await client.post("/token", data=password_form(user["email"], "wrong-password"))
        without = await client.post("/token", data=password_form(plain["email"], "wrong-password"))
        assert with_mfa.status_code == without.status_code == 400
        assert with_mfa.json() == without.json()
        assert with_mfa.json()["error"] == "invalid_grant"
        assert await count(context, MfaToken) == 0


class TestMfaGrant:
    async def test_right_code_gives_tokens_with_mfa_amr_kept_on_refresh(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user = await mfa_user(client, context)
        response = await second_step(client, await challenged(client, user), RIGHT)
        assert response.status_code == 200, response.text
        tokens = response.json()
        claims = (await client.get("/whoami", headers=bearer(tokens))).json()
        assert claims["amr"] == ["pwd", "otp", "mfa"]
        refreshed = await refresh(client, tokens["refresh_token"])
        assert refreshed.status_code == 200
        claims = (await client.get("/whoami", headers=bearer(refreshed.json()))).json()
        assert claims["amr"] == ["pwd", "otp", "mfa"]
        assert await count(context, LoginSession) == 1
        assert await count(context, MfaToken) == 0  # spent

    async def test_token_is_single_use(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user = await mfa_user(client, context)
        token = await challenged(client, user)
        assert (await second_step(client, token, RIGHT)).status_code == 200
        again = await second_step(client, token, RIGHT)
        assert again.status_code == 400
        assert again.json()["error"] == "invalid_grant"

    async def test_token_expires_after_five_minutes(
        self, client: httpx.AsyncClient, context: AppContext, clock: FakeClock
    ) -> None:
        user = await mfa_user(client, context)
        token = await challenged(client, user)
        clock.advance(5 * 60 + 1)
        response = await second_step(client, token, RIGHT)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_grant"

    async def test_five_wrong_codes_kill_the_token(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user = await mfa_user(client, context)
        token = await challenged(client, user)
        for _ in range(5):
            wrong = await second_step(client, token, "000000")
            assert wrong.status_code == 400
            assert wrong.json()["error"] == "invalid_grant"
        assert (await second_step(client, token, RIGHT)).status_code == 400
        assert await events(context, "mfa_failed") == 5  # a dead token names no one
        assert await count(context, LoginSession) == 0

    async def test_concurrent_wrong_codes_count_at_most_five(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user = await mfa_user(client, context)
        token = await challenged(client, user)
        answers = await asyncio.gather(*(second_step(client, token, "000000") for _ in range(10)))
        assert all(answer.status_code == 400 for answer in answers)
        async with context.sessionmaker() as db:
            attempts = await db.scalar(select(MfaToken.attempts))
        assert attempts == 5
        assert (await second_step(client, token, RIGHT)).status_code == 400

    async def test_another_users_token_is_not_this_users_login(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        alice = await mfa_user(client, context)
        bob = await mfa_user(client, context)
        token = await challenged(client, alice)
        await challenged(client, bob)
        response = await second_step(client, token, RIGHT)
        assert response.status_code == 200
        claims = (await client.get("/whoami", headers=bearer(response.json()))).json()
        assert claims["sub"] == alice["id"]  # the token's user, whoever's code it was

    async def test_user_disabled_between_the_steps_is_refused(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user = await mfa_user(client, context)
        token = await challenged(client, user)
        await update_user(context, user, is_active=False)
        response = await second_step(client, token, RIGHT)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_grant"
        assert await count(context, LoginSession) == 0

    @pytest.mark.parametrize(
        ("form", "status"),
        [
            ({"otp": RIGHT}, 400),
            ({"mfa_token": "mfa_x"}, 400),
            ({"mfa_token": "mfa_x", "otp": RIGHT, "credential": "{}"}, 400),
        ],
    )
    async def test_missing_or_both_factors_is_invalid_request(
        self, client: httpx.AsyncClient, context: AppContext, form: dict[str, str], status: int
    ) -> None:
        response = await client.post("/token", data={"grant_type": MFA, **form})
        assert response.status_code == status
        assert response.json()["error"] == "invalid_request"

    async def test_passkey_credential_not_supported_yet(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user = await mfa_user(client, context)
        token = await challenged(client, user)
        response = await client.post(
            "/token", data={"grant_type": MFA, "mfa_token": token, "credential": "{}"}
        )
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"
        assert "not supported yet" in response.json()["error_description"]

    async def test_unknown_token_is_invalid_grant(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        context.codes = FixedCode()
        response = await second_step(client, "mfa_" + "A" * 43, RIGHT)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_grant"


async def test_metadata_lists_the_second_factor_grants(client: httpx.AsyncClient) -> None:
    body = (await client.get("/.well-known/oauth-authorization-server")).json()
    assert MFA in body["grant_types_supported"]
    assert "urn:authapi:params:oauth:grant-type:passkey" in body["grant_types_supported"]
