"""The password grant for an account with a second factor, and the MFA grant of /token
(with a TOTP code from the test's own authenticator, or a passkey)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from authapi.audit.models import AuditEvent
from authapi.context import AppContext
from authapi.mfa.models import MfaToken
from authapi.sessions.models import LoginSession
from tests.mfa.helpers import Totp, enable_totp
from tests.passkeys.helpers import registered
from tests.support.clock import FakeClock
from tests.support.factories import bearer, login, password_form, refresh, register, update_user

MFA = "urn:authapi:params:oauth:grant-type:mfa"


@dataclass
class MfaUser:
    user: dict[str, Any]
    totp: Totp


async def count(context: AppContext, table: Any) -> int:
    async with context.sessionmaker() as db:
        return int(await db.scalar(select(func.count()).select_from(table)) or 0)


async def events(context: AppContext, event: str) -> int:
    async with context.sessionmaker() as db:
        query = select(func.count()).select_from(AuditEvent).where(AuditEvent.event == event)
        return int(await db.scalar(query) or 0)


async def mfa_user(client: httpx.AsyncClient, clock: FakeClock) -> MfaUser:
    """A user with TOTP on (turned on from a session of theirs)."""
    user = await register(client)
    totp = await enable_totp(client, await login(client, user["email"]), clock)
    return MfaUser(user, totp)


async def challenged(client: httpx.AsyncClient, user: dict[str, Any]) -> str:
    response = await client.post("/token", data=password_form(user["email"]))
    assert response.status_code == 400, response.text
    token: str = response.json()["mfa_token"]
    return token


async def second_step(client: httpx.AsyncClient, mfa_token: str, otp: str) -> httpx.Response:
    return await client.post("/token", data={"grant_type": MFA, "mfa_token": mfa_token, "otp": otp})


class TestPasswordGrantWithMfa:
    async def test_right_password_answers_mfa_required_and_no_session(
        self, client: httpx.AsyncClient, context: AppContext, clock: FakeClock
    ) -> None:
        mfa = await mfa_user(client, clock)
        user = mfa.user
        response = await client.post("/token", data=password_form(user["email"]))
        assert response.status_code == 400
        body = response.json()
        assert set(body) == {"error", "error_description", "mfa_token", "mfa_methods"}
        assert body["error"] == "mfa_required"
        assert body["mfa_token"].startswith("mfa_")
        assert body["mfa_methods"] == ["totp", "recovery_code"]
        assert "access_token" not in body
        assert await count(context, LoginSession) == 1  # only the one that turned TOTP on
        # Kept although the answer is an error: the token's row (by its hash only).
        async with context.sessionmaker() as db:
            stored = (await db.scalars(select(MfaToken))).one()
        assert stored.token_hash != body["mfa_token"]
        assert body["mfa_token"] not in stored.token_hash
        assert await events(context, "mfa_challenged") == 1
        assert "authapi_device" not in response.cookies

    async def test_wrong_password_answers_as_for_any_user(
        self, client: httpx.AsyncClient, context: AppContext, clock: FakeClock
    ) -> None:
        mfa = await mfa_user(client, clock)
        user = mfa.user
        plain = await register(client)
        with_mfa = await client.post("/token", data=password_form(user["email"], "wrong-password"))
        without = await client.post("/token", data=password_form(plain["email"], "wrong-password"))
        assert with_mfa.status_code == without.status_code == 400
        assert with_mfa.json() == without.json()
        assert with_mfa.json()["error"] == "invalid_grant"
        assert await count(context, MfaToken) == 0


class TestMfaGrant:
    async def test_right_code_gives_tokens_with_mfa_amr_kept_on_refresh(
        self, client: httpx.AsyncClient, context: AppContext, clock: FakeClock
    ) -> None:
        mfa = await mfa_user(client, clock)
        user = mfa.user
        response = await second_step(client, await challenged(client, user), mfa.totp.code(clock))
        assert response.status_code == 200, response.text
        tokens = response.json()
        claims = (await client.get("/whoami", headers=bearer(tokens))).json()
        assert claims["amr"] == ["pwd", "otp", "mfa"]
        refreshed = await refresh(client, tokens["refresh_token"])
        assert refreshed.status_code == 200
        claims = (await client.get("/whoami", headers=bearer(refreshed.json()))).json()
        assert claims["amr"] == ["pwd", "otp", "mfa"]
        assert await count(context, LoginSession) == 2
        assert await count(context, MfaToken) == 0  # spent

    async def test_token_is_single_use(
        self, client: httpx.AsyncClient, context: AppContext, clock: FakeClock
    ) -> None:
        mfa = await mfa_user(client, clock)
        user = mfa.user
        token = await challenged(client, user)
        assert (await second_step(client, token, mfa.totp.code(clock))).status_code == 200
        clock.advance(30)  # a code of the next step: only the token is spent
        again = await second_step(client, token, mfa.totp.code(clock))
        assert again.status_code == 400
        assert again.json()["error"] == "invalid_grant"

    async def test_token_expires_after_five_minutes(
        self, client: httpx.AsyncClient, context: AppContext, clock: FakeClock
    ) -> None:
        mfa = await mfa_user(client, clock)
        user = mfa.user
        token = await challenged(client, user)
        clock.advance(5 * 60 + 1)
        response = await second_step(client, token, mfa.totp.code(clock))
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_grant"

    async def test_five_wrong_codes_kill_the_token(
        self, client: httpx.AsyncClient, context: AppContext, clock: FakeClock
    ) -> None:
        mfa = await mfa_user(client, clock)
        user = mfa.user
        token = await challenged(client, user)
        for _ in range(5):
            wrong = await second_step(client, token, "000000")
            assert wrong.status_code == 400
            assert wrong.json()["error"] == "invalid_grant"
        assert (await second_step(client, token, mfa.totp.code(clock))).status_code == 400
        assert await events(context, "mfa_failed") == 5  # a dead token names no one
        assert await count(context, LoginSession) == 1

    async def test_concurrent_wrong_codes_count_at_most_five(
        self, client: httpx.AsyncClient, context: AppContext, clock: FakeClock
    ) -> None:
        mfa = await mfa_user(client, clock)
        user = mfa.user
        token = await challenged(client, user)
        answers = await asyncio.gather(*(second_step(client, token, "000000") for _ in range(10)))
        assert all(answer.status_code == 400 for answer in answers)
        async with context.sessionmaker() as db:
            attempts = await db.scalar(select(MfaToken.attempts))
        assert attempts == 5
        assert (await second_step(client, token, mfa.totp.code(clock))).status_code == 400

    async def test_another_users_code_does_not_complete_this_login(
        self, client: httpx.AsyncClient, context: AppContext, clock: FakeClock
    ) -> None:
        alice = await mfa_user(client, clock)
        bob = await mfa_user(client, clock)
        token = await challenged(client, alice.user)
        response = await second_step(client, token, bob.totp.code(clock))
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_grant"
        assert (await second_step(client, token, alice.totp.code(clock))).status_code == 200

    async def test_user_disabled_between_the_steps_is_refused(
        self, client: httpx.AsyncClient, context: AppContext, clock: FakeClock
    ) -> None:
        mfa = await mfa_user(client, clock)
        user = mfa.user
        token = await challenged(client, user)
        await update_user(context, user, is_active=False)
        response = await second_step(client, token, mfa.totp.code(clock))
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_grant"
        assert await count(context, LoginSession) == 1

    @pytest.mark.parametrize(
        ("form", "status"),
        [
            ({"otp": "123456"}, 400),
            ({"mfa_token": "mfa_x"}, 400),
            ({"mfa_token": "mfa_x", "otp": "123456", "credential": "{}"}, 400),
        ],
    )
    async def test_missing_or_both_factors_is_invalid_request(
        self, client: httpx.AsyncClient, context: AppContext, form: dict[str, str], status: int
    ) -> None:
        response = await client.post("/token", data={"grant_type": MFA, **form})
        assert response.status_code == status
        assert response.json()["error"] == "invalid_request"

    async def test_a_broken_passkey_credential_is_refused(
        self, client: httpx.AsyncClient, context: AppContext, clock: FakeClock
    ) -> None:
        mfa = await mfa_user(client, clock)
        token = await challenged(client, mfa.user)
        response = await client.post(
            "/token", data={"grant_type": MFA, "mfa_token": token, "credential": "{}"}
        )
        assert response.status_code == 400
        assert response.json()["error"] in ("invalid_request", "invalid_grant")
        assert await count(context, LoginSession) == 1

    async def test_unknown_token_is_invalid_grant(self, client: httpx.AsyncClient) -> None:
        response = await second_step(client, "mfa_" + "A" * 43, "123456")
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_grant"


class TestPasskeyAsSecondFactor:
    async def test_password_then_passkey(self, client: httpx.AsyncClient) -> None:
        user = await register(client)
        authenticator = await registered(client, await login(client, user["email"]))
        challenge = await client.post("/token", data=password_form(user["email"]))
        assert challenge.status_code == 400
        assert challenge.json()["mfa_methods"] == ["passkey"]
        token = challenge.json()["mfa_token"]
        options = await client.post("/passkeys/options", json={"mfa_token": token})
        assert options.status_code == 200, options.text
        assert [c["id"] for c in options.json()["allowCredentials"]]  # this user's passkey
        assertion = json.dumps(authenticator.sign_in(options.json()))
        response = await client.post(
            "/token", data={"grant_type": MFA, "mfa_token": token, "credential": assertion}
        )
        assert response.status_code == 200, response.text
        claims = (await client.get("/whoami", headers=bearer(response.json()))).json()
        assert claims["amr"] == ["pwd", "hwk", "mfa"]

    async def test_options_need_a_live_mfa_token(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/passkeys/options", json={"mfa_token": "mfa_" + "A" * 43})
        assert response.status_code == 400


async def test_metadata_lists_the_second_factor_grants(client: httpx.AsyncClient) -> None:
    body = (await client.get("/.well-known/oauth-authorization-server")).json()
    assert MFA in body["grant_types_supported"]
    assert "urn:authapi:params:oauth:grant-type:passkey" in body["grant_types_supported"]
