"""Refresh-token rotation: single use, the grace window, reuse detection, expiry."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from authapi.context import AppContext
from authapi.sessions.models import LoginSession
from tests.support.clock import FakeClock
from tests.support.factories import bearer, refresh, registered_login, update_user


async def stored_session(context: AppContext, session_id: str) -> LoginSession:
    async with context.sessionmaker() as db:
        session = await db.get(LoginSession, uuid.UUID(session_id))
        assert session is not None
        return session


async def session_id_of(client: httpx.AsyncClient, tokens: dict[str, str]) -> str:
    claims = (await client.get("/whoami", headers=bearer(tokens))).json()
    return str(claims["sid"])


class TestRotation:
    async def test_each_refresh_returns_new_tokens(self, client: httpx.AsyncClient) -> None:
        _, tokens = await registered_login(client)
        response = await refresh(client, tokens["refresh_token"])
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        new = response.json()
        assert new["refresh_token"] != tokens["refresh_token"]
        assert new["access_token"] != tokens["access_token"]
        assert (await client.get("/whoami", headers=bearer(new))).status_code == 200

    async def test_nothing_of_the_token_is_stored(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        _, tokens = await registered_login(client)
        secret_part = tokens["refresh_token"].removeprefix("rt_")
        async with context.engine.connect() as connection:
            rows = (await connection.exec_driver_sql("SELECT * FROM sessions")).all()
        dumped = repr(rows)
        assert secret_part not in dumped
        assert secret_part[-20:] not in dumped

    @pytest.mark.parametrize(
        "mutate",
        [
            lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # MAC changed
            lambda t: t[:20] + ("A" if t[20] != "A" else "B") + t[21:],  # session id changed
            lambda t: "rt_" + t[3:].upper(),
            lambda t: t + "A",
            lambda t: t.replace("rt_", "xx_"),
            lambda t: t[:-2],
        ],
    )
    async def test_tampered_token_is_refused_and_harms_nothing(
        self, client: httpx.AsyncClient, mutate: object
    ) -> None:
        _, tokens = await registered_login(client)
        tampered = mutate(tokens["refresh_token"])  # type: ignore[operator]
        response = await refresh(client, tampered)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_grant"
        assert (await refresh(client, tokens["refresh_token"])).status_code == 200

    async def test_refresh_carries_the_current_role(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user, tokens = await registered_login(client)
        await update_user(context, user, role="admin")
        new = (await refresh(client, tokens["refresh_token"])).json()
        claims = (await client.get("/whoami", headers=bearer(new))).json()
        assert claims["role"] == "admin"

    async def test_disabled_user_cannot_refresh(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user, tokens = await registered_login(client)
        await update_user(context, user, is_active=False)
        response = await refresh(client, tokens["refresh_token"])
        assert response.json()["error"] == "invalid_grant"


class TestGraceWindowAndReuse:
    async def test_repeat_within_grace_gets_the_newest_token(
        self, client: httpx.AsyncClient, context: AppContext, clock: FakeClock
    ) -> None:
        _, tokens = await registered_login(client)
        first = (await refresh(client, tokens["refresh_token"])).json()
        clock.advance(9)
        again = await refresh(client, tokens["refresh_token"])
        assert again.status_code == 200
        assert again.json()["refresh_token"] == first["refresh_token"]
        session = await stored_session(context, await session_id_of(client, first))
        assert session.generation == 1  # advanced once for both

    async def test_replay_after_grace_revokes_the_whole_session(
        self, client: httpx.AsyncClient, context: AppContext, clock: FakeClock
    ) -> None:
        _, tokens = await registered_login(client)
        newest = (await refresh(client, tokens["refresh_token"])).json()
        sid = await session_id_of(client, newest)
        clock.advance(11)
        replay = await refresh(client, tokens["refresh_token"])
        assert replay.status_code == 400
        assert replay.json()["error"] == "invalid_grant"
        # Even the newest token of the session is refused now, and the event is recorded.
        assert (await refresh(client, newest["refresh_token"])).json()["error"] == "invalid_grant"
        session = await stored_session(context, sid)
        assert session.revoked_reason == "refresh_token_reused"
        assert session.revoked_at is not None

    async def test_replay_of_an_older_generation_revokes_too(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        _, tokens = await registered_login(client)
        second = (await refresh(client, tokens["refresh_token"])).json()
        third = (await refresh(client, second["refresh_token"])).json()
        # Two generations behind: never within grace, whatever the clock says.
        assert (await refresh(client, tokens["refresh_token"])).status_code == 400
        assert (await refresh(client, third["refresh_token"])).status_code == 400

    async def test_reuse_does_not_touch_other_sessions(
        self, client: httpx.AsyncClient, clock: FakeClock
    ) -> None:
        user, tokens = await registered_login(client)
        other = (
            await client.post(
                "/token",
                data={
                    "grant_type": "password",
                    "username": user["email"],
                    "password": "correct horse battery",
                },
            )
        ).json()
        await refresh(client, tokens["refresh_token"])
        clock.advance(60)
        assert (await refresh(client, tokens["refresh_token"])).status_code == 400
        assert (await refresh(client, other["refresh_token"])).status_code == 200

    @pytest.mark.parametrize("settings_overrides", [{"refresh_reuse_grace": 0}])
    async def test_zero_grace_makes_any_repeat_a_reuse(
        self, client: httpx.AsyncClient, clock: FakeClock
    ) -> None:
        _, tokens = await registered_login(client)
        await refresh(client, tokens["refresh_token"])
        clock.advance(0.001)
        assert (await refresh(client, tokens["refresh_token"])).status_code == 400


class TestConcurrentRefresh:
    async def test_parallel_refreshes_all_succeed_with_one_new_token(
        self, client: httpx.AsyncClient, context: AppContext, clock: FakeClock
    ) -> None:
        _, tokens = await registered_login(client)
        sid = await session_id_of(client, tokens)
        responses = await asyncio.gather(
            *(refresh(client, tokens["refresh_token"]) for _ in range(20))
        )
        assert [r.status_code for r in responses] == [200] * 20
        new_tokens = {r.json()["refresh_token"] for r in responses}
        assert len(new_tokens) == 1
        assert new_tokens != {tokens["refresh_token"]}
        assert (await stored_session(context, sid)).generation == 1

        # After the window, the old token is a replay: the session ends, newest included.
        clock.advance(11)
        assert (await refresh(client, tokens["refresh_token"])).status_code == 400
        assert (await refresh(client, new_tokens.pop())).status_code == 400


class TestExpiry:
    async def test_idle_session_expires(self, client: httpx.AsyncClient, clock: FakeClock) -> None:
        _, tokens = await registered_login(client)
        clock.advance(14 * 86400 + 1)
        response = await refresh(client, tokens["refresh_token"])
        assert response.json()["error"] == "invalid_grant"

    async def test_use_extends_the_idle_deadline_up_to_the_absolute_lifetime(
        self, client: httpx.AsyncClient, clock: FakeClock, context: AppContext
    ) -> None:
        _, tokens = await registered_login(client)
        sid = await session_id_of(client, tokens)
        token = tokens["refresh_token"]
        for _ in range(2):  # day 13, day 26: each use moves the idle deadline
            clock.advance(13 * 86400)
            response = await refresh(client, token)
            assert response.status_code == 200
            token = response.json()["refresh_token"]
        session = await stored_session(context, sid)
        assert session.expires_at == session.absolute_expires_at  # capped at 30 days
        clock.advance(4 * 86400 + 1)  # day 30 and a second
        assert (await refresh(client, token)).json()["error"] == "invalid_grant"

    async def test_expired_sessions_are_not_listed(
        self, client: httpx.AsyncClient, clock: FakeClock
    ) -> None:
        _, tokens = await registered_login(client)
        assert len((await client.get("/sessions", headers=bearer(tokens))).json()) == 1
        clock.advance(14 * 86400 + 1)
        # The access token is still valid (its exp is checked against the real clock).
        assert (await client.get("/sessions", headers=bearer(tokens))).json() == []
