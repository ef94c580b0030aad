"""Every kind of revocation refuses the session's access tokens at once: on the
instance that revoked, and on another instance sharing the database, by a poll (both
databases) and by notification (PostgreSQL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text

from authapi.app import create_app
from authapi.config import Settings
from authapi.context import AppContext
from authapi.revocations.feed import LISTENER_APPLICATION_NAME
from authapi.revocations.registry import CLOCK_SKEW_MARGIN
from authapi.sessions import service as sessions
from authapi.sessions.models import RevokeReason
from tests.support.clock import FakeClock
from tests.support.factories import (
    PASSWORD,
    bearer,
    log_out,
    login,
    refresh,
    register,
    registered_login,
    update_user,
)
from tests.support.settings import make_settings
from tests.support.waiting import wait_until


@dataclass
class Scene:
    """A logged-in session (`tokens`) on the app `client` talks to."""

    client: httpx.AsyncClient
    context: AppContext
    clock: FakeClock
    tokens: dict[str, Any]


Revocation = Callable[[Scene], Awaitable[None]]


async def _logout(scene: Scene) -> None:
    await log_out(scene.client, scene.tokens)


async def _revoke_refresh_token(scene: Scene) -> None:
    client, tokens = scene.client, scene.tokens
    response = await client.post(
        "/revoke", data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"}
    )
    assert response.status_code == 200, response.text


async def _revoke_access_token(scene: Scene) -> None:
    client, tokens = scene.client, scene.tokens
    response = await client.post("/revoke", data={"token": tokens["access_token"]})
    assert response.status_code == 200, response.text


async def _delete_session(scene: Scene) -> None:
    client, tokens = scene.client, scene.tokens
    sid = (await client.get("/whoami", headers=bearer(tokens))).json()["sid"]
    response = await client.delete(f"/sessions/{sid}", headers=bearer(tokens))
    assert response.status_code == 204, response.text


async def _delete_all_sessions(scene: Scene) -> None:
    client, tokens = scene.client, scene.tokens
    response = await client.delete("/sessions", headers=bearer(tokens))
    assert response.status_code == 204, response.text


async def _reuse_refresh_token(scene: Scene) -> None:
    client, tokens = scene.client, scene.tokens
    assert (await refresh(client, tokens["refresh_token"])).status_code == 200
    scene.clock.advance(60)  # past the reuse grace, well within the access token's life
    replay = await refresh(client, tokens["refresh_token"])
    assert replay.json()["error"] == "invalid_grant"


async def _as_admin(scene: Scene, method: str, path: str, **body: Any) -> None:
    admin = await register(scene.client)
    await update_user(scene.context, admin, role="admin")
    tokens = await login(scene.client, admin["email"])
    user_id = (await scene.client.get("/whoami", headers=bearer(scene.tokens))).json()["sub"]
    response = await scene.client.request(
        method, path.format(user_id=user_id), json=body or None, headers=bearer(tokens)
    )
    assert response.status_code in (200, 204), response.text


async def _disable_user(scene: Scene) -> None:
    await _as_admin(scene, "PATCH", "/admin/users/{user_id}", is_active=False)


async def _change_role(scene: Scene) -> None:
    await _as_admin(scene, "PATCH", "/admin/users/{user_id}", role="admin")


async def _end_sessions_as_admin(scene: Scene) -> None:
    await _as_admin(scene, "DELETE", "/admin/users/{user_id}/sessions")


async def _delete_account(scene: Scene) -> None:
    # The account's rows go, its sessions' with them: the revocation is published first.
    response = await scene.client.request(
        "DELETE", "/users/me", json={"current_password": PASSWORD}, headers=bearer(scene.tokens)
    )
    assert response.status_code == 204, response.text


REVOCATIONS: dict[str, Revocation] = {
    "logout": _logout,
    "revoke_refresh_token": _revoke_refresh_token,
    "revoke_access_token": _revoke_access_token,
    "delete_session": _delete_session,
    "delete_all_sessions": _delete_all_sessions,
    "refresh_token_reuse": _reuse_refresh_token,
    "user_disabled": _disable_user,
    "role_changed": _change_role,
    "ended_by_admin": _end_sessions_as_admin,
    "account_deleted": _delete_account,
}


async def whoami_status(client: httpx.AsyncClient, tokens: dict[str, Any]) -> int:
    return (await client.get("/whoami", headers=bearer(tokens))).status_code


@pytest.fixture
async def other_instance(
    database_url: str, data_dir: Any, clock: FakeClock, app: Any
) -> AsyncIterator[AppContext]:
    """A second instance on the same database, whose poll runs only when a test says."""
    settings = make_settings(database_url, data_dir, revocation_poll_interval=60)
    other = create_app(settings, clock=clock)
    async with LifespanManager(other):
        context: AppContext = other.state.context
        if not settings.is_sqlite:
            await wait_until(lambda: context.revocation_feed.listening)
        yield context


@pytest.mark.parametrize("revocation", list(REVOCATIONS), ids=list(REVOCATIONS))
async def test_the_revoking_instance_refuses_the_access_token_at_once(
    client: httpx.AsyncClient, context: AppContext, clock: FakeClock, revocation: str
) -> None:
    _, tokens = await registered_login(client)
    assert await whoami_status(client, tokens) == 200
    await REVOCATIONS[revocation](Scene(client, context, clock, tokens))
    response = await client.get("/whoami", headers=bearer(tokens))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def test_a_password_change_refuses_the_other_sessions_access_tokens(
    client: httpx.AsyncClient,
) -> None:
    user, kept = await registered_login(client)
    other = await login(client, user["email"])
    response = await client.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": "another good password"},
        headers=bearer(kept),
    )
    assert response.status_code == 204, response.text
    assert await whoami_status(client, other) == 401
    assert await whoami_status(client, kept) == 200


async def test_other_sessions_of_the_user_are_unaffected(client: httpx.AsyncClient) -> None:
    user, revoked = await registered_login(client)
    untouched = await login(client, user["email"])
    await log_out(client, revoked)
    assert await whoami_status(client, revoked) == 401
    assert await whoami_status(client, untouched) == 200


async def test_another_instance_learns_it_from_its_poll(
    client: httpx.AsyncClient, clock: FakeClock, other_instance: AppContext
) -> None:
    _, tokens = await registered_login(client)
    sid = (await client.get("/whoami", headers=bearer(tokens))).json()["sid"]
    await log_out(client, tokens)
    await other_instance.revocation_feed.poll()
    assert sid in other_instance.revoked_sessions


async def test_another_instance_learns_an_account_deletion_from_its_poll(
    client: httpx.AsyncClient, clock: FakeClock, other_instance: AppContext
) -> None:
    """The deletion takes the sessions' rows, where the poll looks: their revocations
    are kept apart (deleted_sessions), a session logged out a moment before included."""
    user, tokens = await registered_login(client)
    earlier = await login(client, user["email"])
    sids = [
        (await client.get("/whoami", headers=bearer(t))).json()["sid"] for t in (tokens, earlier)
    ]
    await log_out(client, earlier)
    await _delete_account(Scene(client, other_instance, clock, tokens))
    await other_instance.revocation_feed.poll(whole_window=True)
    assert all(sid in other_instance.revoked_sessions for sid in sids)


async def test_an_instance_started_after_the_revocation_knows_it(
    client: httpx.AsyncClient, clock: FakeClock, settings: Settings
) -> None:
    _, tokens = await registered_login(client)
    await log_out(client, tokens)
    late = create_app(settings, clock=clock)
    async with (
        LifespanManager(late),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=late), base_url="http://t") as http,
    ):
        assert await whoami_status(http, tokens) == 401


async def test_a_rolled_back_revocation_refuses_nothing(
    client: httpx.AsyncClient, context: AppContext
) -> None:
    _, tokens = await registered_login(client)
    sid = (await client.get("/whoami", headers=bearer(tokens))).json()["sid"]
    async with context.sessionmaker() as db:
        assert await sessions.revoke(db, uuid.UUID(sid), RevokeReason.LOGOUT, context.clock.now())
        await db.rollback()
    assert sid not in context.revoked_sessions
    assert await whoami_status(client, tokens) == 200


async def test_entries_go_when_the_access_tokens_have_expired(
    client: httpx.AsyncClient, clock: FakeClock, context: AppContext
) -> None:
    _, tokens = await registered_login(client)
    claims = (await client.get("/whoami", headers=bearer(tokens))).json()
    await log_out(client, tokens)
    await context.revocation_feed.poll()
    assert claims["sid"] in context.revoked_sessions
    clock.advance(context.settings.access_token_ttl + CLOCK_SKEW_MARGIN + 1)
    await context.revocation_feed.poll()
    assert claims["sid"] not in context.revoked_sessions
    # By then the session's access tokens have expired: nothing is let in again.
    assert claims["exp"] < clock.now().timestamp()


async def test_turned_off_access_tokens_live_until_they_expire(
    database_url: str, data_dir: Any, clock: FakeClock, app: Any
) -> None:
    settings = make_settings(database_url, data_dir, instant_revocation=False)
    plain = create_app(settings, clock=clock)
    async with (
        LifespanManager(plain),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=plain), base_url="http://t") as http,
    ):
        _, tokens = await registered_login(http)
        await log_out(http, tokens)
        assert await whoami_status(http, tokens) == 200
        assert (await refresh(http, tokens["refresh_token"])).status_code == 400
        assert not plain.state.context.revocation_feed.listening


@pytest.mark.parametrize("backend", ["postgresql"])
class TestNotifications:
    """PostgreSQL's LISTEN/NOTIFY: another instance learns a revocation from it, with
    its poll out of the way, and its listener comes back after losing its connection."""

    @pytest.mark.parametrize("revocation", list(REVOCATIONS), ids=list(REVOCATIONS))
    async def test_another_instance_learns_it_within_a_second(
        self,
        client: httpx.AsyncClient,
        context: AppContext,
        clock: FakeClock,
        other_instance: AppContext,
        revocation: str,
    ) -> None:
        _, tokens = await registered_login(client)
        sid = (await client.get("/whoami", headers=bearer(tokens))).json()["sid"]
        await REVOCATIONS[revocation](Scene(client, context, clock, tokens))
        assert await wait_until(lambda: sid in other_instance.revoked_sessions, within=1.0) < 1

    async def test_the_listener_reconnects_by_itself(
        self, client: httpx.AsyncClient, clock: FakeClock, other_instance: AppContext
    ) -> None:
        feed = other_instance.revocation_feed
        async with other_instance.engine.connect() as connection:
            terminated = await connection.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = :name"
                ),
                {"name": f"{LISTENER_APPLICATION_NAME}/{os.getpid()}"},
            )
        assert terminated >= 1  # both in-process instances' listeners
        await wait_until(lambda: not feed.listening)
        await wait_until(lambda: feed.listening)

        _, tokens = await registered_login(client)
        sid = (await client.get("/whoami", headers=bearer(tokens))).json()["sid"]
        await log_out(client, tokens)
        assert await wait_until(lambda: sid in other_instance.revoked_sessions, within=1.0) < 1
