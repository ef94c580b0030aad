"""Every way of ending a session: its refresh tokens are refused at once, the caller's
other sessions keep working."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.factories import PASSWORD, bearer, login, refresh, register


async def two_sessions(
    client: httpx.AsyncClient,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    user = await register(client)
    return user, await login(client, user["email"]), await login(client, user["email"])


async def refresh_works(client: httpx.AsyncClient, tokens: dict[str, Any]) -> bool:
    return (await refresh(client, tokens["refresh_token"])).status_code == 200


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


class TestSessionEndpoints:
    async def test_delete_one_session(self, client: httpx.AsyncClient) -> None:
        _, mine, other = await two_sessions(client)
        sessions = (await client.get("/sessions", headers=bearer(mine))).json()
        other_id = next(s["id"] for s in sessions if not s["current"])
        response = await client.delete(f"/sessions/{other_id}", headers=bearer(mine))
        assert response.status_code == 204
        assert not await refresh_works(client, other)
        assert await refresh_works(client, mine)

    async def test_cannot_delete_somebody_elses_session(self, client: httpx.AsyncClient) -> None:
        _, mine, _ = await two_sessions(client)
        _, theirs, _ = await two_sessions(client)
        their_sid = (await client.get("/whoami", headers=bearer(theirs))).json()["sid"]
        response = await client.delete(f"/sessions/{their_sid}", headers=bearer(mine))
        assert response.status_code == 404
        assert await refresh_works(client, theirs)

    @pytest.mark.parametrize("session_id", ["00000000-0000-0000-0000-000000000000", "not-a-uuid"])
    async def test_unknown_or_malformed_id(
        self, client: httpx.AsyncClient, session_id: str
    ) -> None:
        _, mine, _ = await two_sessions(client)
        response = await client.delete(f"/sessions/{session_id}", headers=bearer(mine))
        assert response.status_code in (404, 422)
        assert "error" in response.json()

    async def test_delete_all_sessions(self, client: httpx.AsyncClient) -> None:
        _, mine, other = await two_sessions(client)
        _, stranger, _ = await two_sessions(client)
        assert (await client.delete("/sessions", headers=bearer(mine))).status_code == 204
        assert not await refresh_works(client, mine)
        assert not await refresh_works(client, other)
        assert await refresh_works(client, stranger)


class TestPasswordChange:
    async def test_ends_other_sessions_keeps_this_one(self, client: httpx.AsyncClient) -> None:
        user, mine, other = await two_sessions(client)
        response = await client.post(
            "/users/me/password",
            json={"current_password": PASSWORD, "new_password": "a brand new secret"},
            headers=bearer(mine),
        )
        assert response.status_code == 204
        assert not await refresh_works(client, other)
        assert await refresh_works(client, mine)
        # The new password works, the old one no longer does.
        await login(client, user["email"], "a brand new secret")
        old = await client.post(
            "/token",
            data={"grant_type": "password", "username": user["email"], "password": PASSWORD},
        )
        assert old.json()["error"] == "invalid_grant"

    async def test_wrong_current_password_changes_nothing(self, client: httpx.AsyncClient) -> None:
        user, mine, other = await two_sessions(client)
        response = await client.post(
            "/users/me/password",
            json={"current_password": "not my password", "new_password": "a brand new secret"},
            headers=bearer(mine),
        )
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_password"
        assert await refresh_works(client, other)
        await login(client, user["email"])

    @pytest.mark.parametrize("new_password", ["short", "x" * 129])
    async def test_new_password_must_have_a_valid_length(
        self, client: httpx.AsyncClient, new_password: str
    ) -> None:
        user, mine, _ = await two_sessions(client)
        response = await client.post(
            "/users/me/password",
            json={"current_password": PASSWORD, "new_password": new_password},
            headers=bearer(mine),
        )
        assert response.status_code == 422
        assert response.json()["error"] == "invalid_request"
        await login(client, user["email"])
