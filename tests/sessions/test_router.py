from __future__ import annotations

import httpx

from tests.support.factories import bearer, login, register


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
