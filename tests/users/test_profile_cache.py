"""GET /users/me reads the database once per session and token lifetime; what it
remembers never outlives a change to the user, since every such change ends the
user's sessions."""

from __future__ import annotations

import httpx
import pytest

from authapi.context import AppContext
from tests.support.factories import (
    bearer,
    login,
    register,
    registered_login,
    statements_sent,
    update_user,
)


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    # The background reads (revocations, signing keys) are not what is counted here.
    return {"revocation_poll_interval": 60, "key_reload_interval": 60}


async def test_the_profile_is_read_once_per_session(
    client: httpx.AsyncClient, context: AppContext
) -> None:
    user, tokens = await registered_login(client)
    assert (await client.get("/users/me", headers=bearer(tokens))).json() == user
    with statements_sent(context) as statements:
        for _ in range(20):
            assert (await client.get("/users/me", headers=bearer(tokens))).json() == user
    assert statements == []


async def test_an_admin_change_shows_at_once(
    client: httpx.AsyncClient, context: AppContext
) -> None:
    user, tokens = await registered_login(client)
    assert (await client.get("/users/me", headers=bearer(tokens))).json()["role"] == "user"
    admin = await register(client)
    await update_user(context, admin, role="admin")
    admin_tokens = await login(client, admin["email"])

    changed = await client.patch(
        f"/admin/users/{user['id']}", json={"role": "admin"}, headers=bearer(admin_tokens)
    )
    assert changed.status_code == 200
    # The remembered profile belongs to an ended session: refused, not served.
    assert (await client.get("/users/me", headers=bearer(tokens))).status_code == 401
    fresh = await login(client, user["email"])
    assert (await client.get("/users/me", headers=bearer(fresh))).json()["role"] == "admin"

    disabled = await client.patch(
        f"/admin/users/{user['id']}", json={"is_active": False}, headers=bearer(admin_tokens)
    )
    assert disabled.status_code == 200
    assert (await client.get("/users/me", headers=bearer(fresh))).status_code == 401
