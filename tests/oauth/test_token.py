"""POST /token: the RFC 6749 password and refresh_token grants."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import func, select

from authapi.context import AppContext
from authapi.sessions.models import LoginSession
from tests.support.factories import (
    PASSWORD,
    bearer,
    hashing_blocked,
    login,
    register,
    registered_login,
    update_user,
)


async def session_count(context: AppContext) -> int:
    async with context.sessionmaker() as db:
        return int(await db.scalar(select(func.count()).select_from(LoginSession)) or 0)


class TestPasswordGrant:
    async def test_token_response_shape_and_headers(self, client: httpx.AsyncClient) -> None:
        user = await register(client)
        response = await client.post(
            "/token",
            data={"grant_type": "password", "username": user["email"], "password": PASSWORD},
        )
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 300
        assert body["refresh_token"].startswith("rt_")
        assert body["scope"] == "profile email"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["pragma"] == "no-cache"

    async def test_email_is_matched_case_insensitively(self, client: httpx.AsyncClient) -> None:
        user = await register(client, email="Mixed.Case@Example.org")
        await login(client, "  MIXED.case@EXAMPLE.ORG ")
        assert user["email"] == "mixed.case@example.org"

    async def test_unknown_parameters_are_ignored(self, client: httpx.AsyncClient) -> None:
        # RFC 6749 §3.2: unrecognised parameters are ignored, so none of these can name
        # the client or change what the token grants.
        user = await register(client)
        tokens = await login(client, user["email"], client_id="spa", client_secret="", state="xyz")
        assert tokens["scope"] == "profile email"
        claims = await client.get("/whoami", headers=bearer(tokens))
        assert claims.status_code == 200
        assert claims.json()["sub"] == user["id"]
        assert claims.json()["client_id"] == "authapi"  # the configured one, not "spa"
        assert "state" not in claims.json()

    async def test_wrong_password_and_unknown_email_get_the_same_answer(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user = await register(client)
        wrong = await client.post(
            "/token",
            data={"grant_type": "password", "username": user["email"], "password": "wrong pass"},
        )
        unknown = await client.post(
            "/token",
            data={"grant_type": "password", "username": "nobody@example.com", "password": PASSWORD},
        )
        assert wrong.status_code == unknown.status_code == 400
        assert wrong.json() == unknown.json()
        assert wrong.json()["error"] == "invalid_grant"
        assert await session_count(context) == 0

    async def test_unknown_email_still_verifies_a_hash(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        # The timing equaliser: an unknown email costs one hash verification too.
        # Occupy every hashing thread, then watch the login queue for one.
        hasher = context.hasher
        with hashing_blocked(context):
            login_task = asyncio.create_task(
                client.post(
                    "/token",
                    data={
                        "grant_type": "password",
                        "username": "ghost@example.com",
                        "password": "x" * 9,
                    },
                )
            )
            for _ in range(10_000):
                if hasher.pending:
                    break
                await asyncio.sleep(0)
            assert hasher.pending == 1
            assert not login_task.done()
        assert (await login_task).json()["error"] == "invalid_grant"

    async def test_disabled_user_gets_invalid_grant(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user = await register(client)
        await update_user(context, user, is_active=False)
        response = await client.post(
            "/token",
            data={"grant_type": "password", "username": user["email"], "password": PASSWORD},
        )
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_grant"

    async def test_each_login_is_a_new_session(self, client: httpx.AsyncClient) -> None:
        user = await register(client)
        first = await login(client, user["email"])
        second = await login(client, user["email"])
        sessions = (await client.get("/sessions", headers=bearer(second))).json()
        assert len(sessions) == 2
        assert first["refresh_token"] != second["refresh_token"]


class TestScope:
    @pytest.mark.parametrize(
        ("requested", "granted"),
        [("profile", "profile"), ("email profile", "profile email"), ("", "profile email")],
    )
    async def test_granted_scope(
        self, client: httpx.AsyncClient, requested: str, granted: str
    ) -> None:
        user = await register(client)
        tokens = await login(client, user["email"], scope=requested)
        assert tokens["scope"] == granted
        claims = (await client.get("/whoami", headers=bearer(tokens))).json()
        assert claims["scope"] == granted

    @pytest.mark.parametrize("requested", ["admin", "profile admin", "pro\\file", "profile  email"])
    async def test_unknown_scope_is_refused(
        self, client: httpx.AsyncClient, requested: str
    ) -> None:
        user = await register(client)
        response = await client.post(
            "/token",
            data={
                "grant_type": "password",
                "username": user["email"],
                "password": PASSWORD,
                "scope": requested,
            },
        )
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_scope"

    async def test_refresh_may_narrow_but_not_widen(self, client: httpx.AsyncClient) -> None:
        user = await register(client)
        tokens = await login(client, user["email"], scope="profile")
        widened = await client.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "scope": "profile email",
            },
        )
        assert widened.status_code == 400
        assert widened.json()["error"] == "invalid_scope"
        # The refused request changed nothing: the token still rotates.
        narrowed = await client.post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        )
        assert narrowed.status_code == 200
        assert narrowed.json()["scope"] == "profile"


class TestRefreshTokenGrant:
    async def test_rotates_like_refresh(self, client: httpx.AsyncClient) -> None:
        _, tokens = await registered_login(client)
        response = await client.post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        )
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        assert response.json()["refresh_token"] != tokens["refresh_token"]


class TestMalformedTokenRequests:
    @pytest.mark.parametrize(
        ("data", "error"),
        [
            ({}, "invalid_request"),
            ({"grant_type": ""}, "invalid_request"),
            ({"grant_type": "password"}, "invalid_request"),
            ({"grant_type": "password", "username": "a@example.com"}, "invalid_request"),
            ({"grant_type": "refresh_token"}, "invalid_request"),
            ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
            ({"grant_type": "authorization_code", "code": "x"}, "unsupported_grant_type"),
            ({"grant_type": "refresh_token", "refresh_token": "rt_nope"}, "invalid_grant"),
            (
                {"grant_type": "password", "username": "a@b.c", "password": "p" * 2000},
                "invalid_request",
            ),
        ],
    )
    async def test_rfc6749_errors(
        self, client: httpx.AsyncClient, data: dict[str, str], error: str
    ) -> None:
        response = await client.post("/token", data=data)
        assert response.status_code == 400
        assert response.json()["error"] == error
        assert set(response.json()) == {"error", "error_description"}
        assert response.headers["cache-control"] == "no-store"

    async def test_repeated_parameter_is_refused(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/token",
            content="grant_type=password&username=a@example.com&password=x&password=y",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"

    async def test_json_body_is_not_a_form(self, client: httpx.AsyncClient) -> None:
        user = await register(client)
        response = await client.post(
            "/token",
            json={"grant_type": "password", "username": user["email"], "password": PASSWORD},
        )
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"
