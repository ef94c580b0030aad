"""The caller's sessions: GET /sessions lists them, DELETE /sessions/{id} and DELETE
/sessions end one or all of them."""

from __future__ import annotations

import httpx
import pytest

from tests.support.factories import bearer, login, refresh_works, register, two_sessions


class TestListSessions:
    async def test_fields_and_current_flag(self, client: httpx.AsyncClient) -> None:
        user = await register(client)
        await login(client, user["email"])
        mine = await client.post(
            "/token",
            data={
                "grant_type": "password",
                "username": user["email"],
                "password": "correct horse battery",
            },
            headers={"User-Agent": "TestPhone/1.0"},
        )
        response = await client.get("/sessions", headers=bearer(mine.json()))
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        sessions = response.json()
        assert len(sessions) == 2
        assert set(sessions[0]) == {
            "id",
            "created_at",
            "last_used_at",
            "expires_at",
            "user_agent",
            "ip",
            "current",
        }
        current = [s for s in sessions if s["current"]]
        assert len(current) == 1
        assert current[0]["user_agent"] == "TestPhone/1.0"
        assert current[0]["expires_at"].endswith("Z")

    async def test_only_the_callers_sessions(self, client: httpx.AsyncClient) -> None:
        alice = await register(client)
        bob = await register(client)
        await login(client, bob["email"])
        tokens = await login(client, alice["email"])
        assert len((await client.get("/sessions", headers=bearer(tokens))).json()) == 1

    async def test_needs_a_token(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/sessions")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


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
