"""Ending a session with /logout and /revoke (RFC 7009): its refresh tokens are refused
at once, the caller's other sessions keep working. The other ways: DELETE /sessions
(tests/sessions/test_router.py), a password change (tests/users/test_router.py)."""

from __future__ import annotations

import httpx
import pytest

from tests.support.factories import (
    bearer,
    refresh,
    refresh_works,
    two_sessions,
)


class TestLogout:
    async def test_with_refresh_token_in_body(self, client: httpx.AsyncClient) -> None:
        _, mine, other = await two_sessions(client)
        response = await client.post("/logout", json={"refresh_token": mine["refresh_token"]})
        assert response.status_code == 204
        assert not await refresh_works(client, mine)
        assert await refresh_works(client, other)

    async def test_with_bearer_access_token(self, client: httpx.AsyncClient) -> None:
        _, mine, other = await two_sessions(client)
        response = await client.post("/logout", headers=bearer(mine))
        assert response.status_code == 204
        assert not await refresh_works(client, mine)
        assert await refresh_works(client, other)

    async def test_a_rotated_token_still_ends_its_session(self, client: httpx.AsyncClient) -> None:
        _, mine, _ = await two_sessions(client)
        newest = (await refresh(client, mine["refresh_token"])).json()
        assert (
            await client.post("/logout", json={"refresh_token": mine["refresh_token"]})
        ).status_code == 204
        assert not await refresh_works(client, newest)

    async def test_is_idempotent(self, client: httpx.AsyncClient) -> None:
        _, mine, _ = await two_sessions(client)
        for _ in range(2):
            response = await client.post("/logout", json={"refresh_token": mine["refresh_token"]})
            assert response.status_code == 204

    async def test_without_credentials_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/logout")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"

    async def test_with_bad_bearer_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/logout", headers=bearer("not.a.jwt"))
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


class TestRevokeEndpoint:
    @pytest.mark.parametrize("hint", [None, "refresh_token", "access_token", "something_else"])
    async def test_refresh_token_ends_its_session(
        self, client: httpx.AsyncClient, hint: str | None
    ) -> None:
        _, mine, other = await two_sessions(client)
        data = {"token": mine["refresh_token"]}
        if hint:
            data["token_type_hint"] = hint
        response = await client.post("/revoke", data=data)
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        assert not await refresh_works(client, mine)
        assert await refresh_works(client, other)

    async def test_access_token_ends_its_session(self, client: httpx.AsyncClient) -> None:
        _, mine, other = await two_sessions(client)
        response = await client.post("/revoke", data={"token": mine["access_token"]})
        assert response.status_code == 200
        assert not await refresh_works(client, mine)
        assert await refresh_works(client, other)

    @pytest.mark.parametrize("token", ["rt_unknown", "garbage", "a.b.c", "rt_" + "A" * 76])
    async def test_unknown_tokens_get_200(self, client: httpx.AsyncClient, token: str) -> None:
        _, mine, _ = await two_sessions(client)
        response = await client.post("/revoke", data={"token": token})
        assert response.status_code == 200
        assert await refresh_works(client, mine)

    async def test_missing_token_is_invalid_request(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/revoke", data={"token_type_hint": "refresh_token"})
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"
