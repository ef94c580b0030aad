"""The admin API: listing users, disabling them, changing their role, ending their
sessions; each refused to anybody but an admin, and each recorded."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import select, text

from authapi.audit.models import AuditEvent
from authapi.context import AppContext
from authapi.sessions.models import LoginSession
from authapi.users.models import User
from tests.support.factories import (
    PASSWORD,
    bearer,
    list_all,
    login,
    make_admin,
    refresh,
    register,
    registered_login,
    update_user,
)
from tests.support.settings import CHEAP_HASHES

_T = TypeVar("_T")
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
# Every admin endpoint, with a valid request for it (the user id is filled in).
ENDPOINTS = [
    ("GET", "/admin/users", None),
    ("PATCH", "/admin/users/{id}", {"is_active": False}),
    ("DELETE", "/admin/users/{id}/sessions", None),
]


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    # Many registrations and logins per test: no rate limit, cheap hashes.
    return {"rate_limit_enabled": False, **CHEAP_HASHES}


async def patch_user(
    client: httpx.AsyncClient, admin: dict[str, Any], user_id: str, **body: Any
) -> httpx.Response:
    return await client.patch(f"/admin/users/{user_id}", json=body, headers=bearer(admin))


async def stored_user(context: AppContext, user_id: str) -> User:
    async with context.sessionmaker() as db:
        user = await db.get(User, uuid.UUID(user_id))
    assert user is not None
    return user


async def admin_actions(context: AppContext) -> list[AuditEvent]:
    async with context.sessionmaker() as db:
        query = select(AuditEvent).where(AuditEvent.event == "admin_action")
        return list(await db.scalars(query.order_by(AuditEvent.id)))


async def revoked_reasons(context: AppContext, user_id: str) -> list[str | None]:
    async with context.sessionmaker() as db:
        query = select(LoginSession.revoked_reason).where(
            LoginSession.user_id == uuid.UUID(user_id)
        )
        return list(await db.scalars(query))


async def assert_refused(client: httpx.AsyncClient, refresh_token: str) -> None:
    response = await refresh(client, refresh_token)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


class TestAccess:
    @pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
    async def test_needs_a_token(
        self, client: httpx.AsyncClient, method: str, path: str, body: Any
    ) -> None:
        response = await client.request(method, path.format(id=UNKNOWN_ID), json=body)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"] == "invalid_token"

    @pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
    async def test_refuses_a_user_who_is_not_an_admin(
        self,
        client: httpx.AsyncClient,
        context: AppContext,
        method: str,
        path: str,
        body: Any,
    ) -> None:
        victim, victim_tokens = await registered_login(client)
        _, tokens = await registered_login(client)
        response = await client.request(
            method, path.format(id=victim["id"]), json=body, headers=bearer(tokens)
        )
        assert response.status_code == 403
        assert response.json()["error"] == "insufficient_role"
        assert (await stored_user(context, victim["id"])).is_active
        assert (await refresh(client, victim_tokens["refresh_token"])).status_code == 200
        assert await admin_actions(context) == []


class TestList:
    async def test_pages_cover_every_user_once_in_email_order(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        users = [await register(client) for _ in range(7)]
        admin, tokens = await make_admin(client, context)

        pages = await list_all(client, tokens, limit=3)

        assert [len(page) for page in pages] == [3, 3, 2]  # no empty page at the end
        emails = [item["email"] for page in pages for item in page]
        assert emails == sorted(u["email"] for u in [*users, admin])
        assert set(pages[0][0]) == {
            "id",
            "email",
            "email_verified",
            "mfa_enabled",
            "role",
            "is_active",
            "created_at",
        }

    async def test_an_exact_last_page_has_no_next(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        await register(client)
        _, tokens = await make_admin(client, context)
        response = await client.get("/admin/users", params={"limit": 2}, headers=bearer(tokens))
        assert len(response.json()["items"]) == 2
        assert response.json()["next_after"] is None

    async def test_email_filter_is_a_case_insensitive_substring(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        for email in [
            "alice@example.com",
            "Bob.Alicen@example.org",
            "dr.smith@example.com",
            "under_score@example.com",
        ]:
            await register(client, email)
        _, tokens = await make_admin(client, context, "root@example.net")

        async def matching(fragment: str) -> list[str]:
            pages = await list_all(client, tokens, email=fragment, limit=1)
            return [item["email"] for page in pages for item in page]

        assert await matching("ALICE") == ["alice@example.com", "bob.alicen@example.org"]
        assert await matching("example.org") == ["bob.alicen@example.org"]
        assert await matching("r_s") == ["under_score@example.com"]  # `_` is no wildcard
        assert await matching("%") == []
        assert await matching("nobody") == []

    async def test_role_and_is_active_filters(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user = await register(client)
        disabled = await register(client)
        await update_user(context, disabled, is_active=False)
        admin, tokens = await make_admin(client, context)

        async def ids(**params: Any) -> set[str]:
            response = await client.get("/admin/users", params=params, headers=bearer(tokens))
            assert response.status_code == 200
            return {item["id"] for item in response.json()["items"]}

        assert await ids(role="admin") == {admin["id"]}
        assert await ids(role="user") == {user["id"], disabled["id"]}
        assert await ids(is_active="false") == {disabled["id"]}
        assert await ids(is_active="true", role="user") == {user["id"]}

    @pytest.mark.parametrize(
        "params",
        [
            {"limit": 0},
            {"limit": 201},
            {"role": "root"},
            {"is_active": "maybe"},
            {"email": "a\x00b"},
            {"email": "x" * 255},
            {"after": "\x00"},
        ],
    )
    async def test_bad_parameters_are_422(
        self, client: httpx.AsyncClient, context: AppContext, params: dict[str, Any]
    ) -> None:
        _, tokens = await make_admin(client, context)
        response = await client.get("/admin/users", params=params, headers=bearer(tokens))
        assert response.status_code == 422
        assert response.json()["error"] == "invalid_request"


class TestDisable:
    async def test_ends_sessions_and_logins_until_enabled_again(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user, tokens = await registered_login(client)
        second = await login(client, user["email"])
        _, admin = await make_admin(client, context)

        response = await patch_user(client, admin, user["id"], is_active=False)

        assert response.status_code == 200
        assert response.json() == {**user, "is_active": False}
        for session in (tokens, second):
            await assert_refused(client, session["refresh_token"])
        assert (await client.get("/users/me", headers=bearer(tokens))).status_code == 401
        failed = await client.post(
            "/token",
            data={"grant_type": "password", "username": user["email"], "password": PASSWORD},
        )
        assert failed.status_code == 400
        assert failed.json()["error"] == "invalid_grant"
        assert await revoked_reasons(context, user["id"]) == ["user_disabled"] * 2

        enabled = await patch_user(client, admin, user["id"], is_active=True)

        assert enabled.status_code == 200
        assert enabled.json()["is_active"] is True
        again = await login(client, user["email"])
        me = await client.get("/users/me", headers=bearer(again))
        assert me.status_code == 200

    async def test_an_admin_cannot_disable_themself(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        admin, tokens = await make_admin(client, context)

        response = await patch_user(client, tokens, admin["id"], is_active=False)

        assert response.status_code == 409
        assert response.json() == {
            "error": "own_account",
            "error_description": (
                "Admins cannot disable their own account or change their own role."
            ),
        }
        stored = await stored_user(context, admin["id"])
        assert (stored.is_active, stored.role) == (True, "admin")
        assert (await refresh(client, tokens["refresh_token"])).status_code == 200
        assert await admin_actions(context) == []


class TestRoleChange:
    async def test_promotion_ends_sessions_and_the_next_login_has_the_role(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user, tokens = await registered_login(client)
        _, admin = await make_admin(client, context)

        response = await patch_user(client, admin, user["id"], role="admin")

        assert response.status_code == 200
        assert response.json() == {**user, "role": "admin"}
        await assert_refused(client, tokens["refresh_token"])
        assert await revoked_reasons(context, user["id"]) == ["role_changed"]
        promoted = await login(client, user["email"])
        claims = (await client.get("/whoami", headers=bearer(promoted))).json()
        assert claims["role"] == "admin"
        listing = await client.get("/admin/users", headers=bearer(promoted))
        assert listing.status_code == 200

    async def test_a_demoted_admin_loses_admin_access_at_once(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        other, other_tokens = await make_admin(client, context)
        _, admin = await make_admin(client, context)

        response = await patch_user(client, admin, other["id"], role="user")

        assert response.status_code == 200
        assert response.json()["role"] == "user"
        # Its access token still says admin: refused all the same, as a token of an
        # ended session.
        refused = await client.get("/admin/users", headers=bearer(other_tokens))
        assert refused.status_code == 401
        await assert_refused(client, other_tokens["refresh_token"])
        demoted = await login(client, other["email"])
        claims = (await client.get("/whoami", headers=bearer(demoted))).json()
        assert claims["role"] == "user"

    async def test_an_admin_cannot_demote_themself(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        admin, tokens = await make_admin(client, context)

        response = await patch_user(client, tokens, admin["id"], role="user", is_active=True)

        assert response.status_code == 409
        assert response.json()["error"] == "own_account"
        assert (await stored_user(context, admin["id"])).role == "admin"
        assert (await client.get("/admin/users", headers=bearer(tokens))).status_code == 200
        assert await revoked_reasons(context, admin["id"]) == [None]
        assert await admin_actions(context) == []


class TestConcurrentDemotion:
    """Two admins demoting (or disabling) each other at the same moment: one change wins,
    the other is refused, and an admin remains."""

    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        # The requests wait for held rows: give them longer than a busy machine needs.
        return {"rate_limit_enabled": False, "argon2_memory_cost": 1024, "db_timeout": 30}

    @pytest.mark.parametrize("change", [{"role": "user"}, {"is_active": False}])
    async def test_one_wins_and_an_admin_remains(
        self, client: httpx.AsyncClient, context: AppContext, backend: str, change: dict[str, Any]
    ) -> None:
        first, first_tokens = await make_admin(client, context)
        second, second_tokens = await make_admin(client, context)

        async def both_at_once() -> list[httpx.Response]:
            return list(
                await asyncio.gather(
                    patch_user(client, first_tokens, second["id"], **change),
                    patch_user(client, second_tokens, first["id"], **change),
                )
            )

        if backend == "postgresql":
            # Hold both rows, so that each request has passed its role check and waits
            # for the rows before either can change anything: the race, made certain.
            responses = await _with_rows_held(context, [first["id"], second["id"]], both_at_once)
        else:
            responses = await both_at_once()  # SQLite: one write transaction at a time

        statuses = sorted(response.status_code for response in responses)
        assert statuses[0] == 200
        assert statuses[1] in (401, 403)  # refused: no longer an admin
        remaining = [await stored_user(context, user["id"]) for user in (first, second)]
        assert sum(user.role == "admin" and user.is_active for user in remaining) == 1
        assert len(await admin_actions(context)) == 1


async def _with_rows_held(
    context: AppContext, user_ids: list[str], requests: Callable[[], Awaitable[_T]]
) -> _T:
    """Run `requests` while another transaction holds the users' rows; let go once two
    requests wait for a lock (PostgreSQL)."""
    async with context.engine.connect() as holder:
        await holder.execute(
            select(User.id).where(User.id.in_([uuid.UUID(i) for i in user_ids])).with_for_update()
        )
        running = asyncio.ensure_future(requests())
        waiting_for_locks = text(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        for _ in range(2000):  # a bound, not a timing: each round is a query
            # A transaction sees one snapshot of the activity statistics unless cleared.
            await holder.execute(text("SELECT pg_stat_clear_snapshot()"))
            if (await holder.scalar(waiting_for_locks)) == 2 or running.done():
                break
            await asyncio.sleep(0.01)
        await holder.rollback()
    return await running


class TestPatch:
    @pytest.mark.parametrize(
        "body",
        [{}, {"role": "user", "is_active": True}, {"role": None, "is_active": None}],
    )
    async def test_a_no_op_changes_nothing(
        self, client: httpx.AsyncClient, context: AppContext, body: dict[str, Any]
    ) -> None:
        user, tokens = await registered_login(client)
        _, admin = await make_admin(client, context)

        response = await patch_user(client, admin, user["id"], **body)

        assert response.status_code == 200
        assert response.json() == user
        assert (await refresh(client, tokens["refresh_token"])).status_code == 200
        assert await admin_actions(context) == []

    async def test_an_admin_may_send_their_own_values(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        admin, tokens = await make_admin(client, context)
        response = await patch_user(client, tokens, admin["id"], role="admin", is_active=True)
        assert response.status_code == 200
        assert response.json()["role"] == "admin"

    async def test_unknown_user_is_404(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        _, admin = await make_admin(client, context)
        response = await patch_user(client, admin, UNKNOWN_ID, is_active=False)
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"

    @pytest.mark.parametrize(
        ("user_id", "body"),
        [
            ("not-a-uuid", {"is_active": False}),
            ("{id}", {"role": "root"}),
            ("{id}", {"is_active": "false"}),  # a string, not a boolean
            ("{id}", {"is_active": 0}),
            ("{id}", {"email": "new@example.com"}),  # not something an admin may set
            ("{id}", {"role": "admin", "password_hash": "x"}),
        ],
    )
    async def test_malformed_input_is_422(
        self, client: httpx.AsyncClient, context: AppContext, user_id: str, body: dict[str, Any]
    ) -> None:
        user = await register(client)
        _, admin = await make_admin(client, context)

        response = await patch_user(client, admin, user_id.format(id=user["id"]), **body)

        assert response.status_code == 422
        assert response.json()["error"] == "invalid_request"
        stored = await stored_user(context, user["id"])
        assert (stored.role, stored.is_active, stored.email) == ("user", True, user["email"])


class TestEndSessions:
    async def test_ends_every_session_of_the_user(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user, first = await registered_login(client)
        second = await login(client, user["email"])
        _, bystander_tokens = await registered_login(client)
        _, admin = await make_admin(client, context)

        response = await client.delete(f"/admin/users/{user['id']}/sessions", headers=bearer(admin))

        assert response.status_code == 204
        assert response.content == b""
        for tokens in (first, second):
            await assert_refused(client, tokens["refresh_token"])
        assert None not in await revoked_reasons(context, user["id"])
        assert (await refresh(client, bystander_tokens["refresh_token"])).status_code == 200
        assert (await stored_user(context, user["id"])).is_active  # may log in again
        await login(client, user["email"])

    async def test_unknown_user_is_404(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        _, admin = await make_admin(client, context)
        response = await client.delete(f"/admin/users/{UNKNOWN_ID}/sessions", headers=bearer(admin))
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"

    async def test_malformed_id_is_422(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        _, admin = await make_admin(client, context)
        response = await client.delete("/admin/users/123/sessions", headers=bearer(admin))
        assert response.status_code == 422
        assert response.json()["error"] == "invalid_request"
        assert "user_id" in response.json()["error_description"]


class TestAudit:
    async def test_each_admin_action_is_recorded_with_its_target_and_actor(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user, _ = await registered_login(client)
        admin, tokens = await make_admin(client, context)

        await patch_user(client, tokens, user["id"], is_active=False)
        await patch_user(client, tokens, user["id"], is_active=True, role="admin")
        await patch_user(client, tokens, user["id"], role="admin")  # no-op: not recorded
        await client.delete(f"/admin/users/{user['id']}/sessions", headers=bearer(tokens))

        recorded = await admin_actions(context)
        assert [e.detail for e in recorded] == [
            f"disabled by={admin['id']}",
            f"role=admin,enabled by={admin['id']}",
            f"sessions_ended by={admin['id']}",
        ]
        assert {str(e.user_id) for e in recorded} == {user["id"]}
        assert all(e.ip for e in recorded)
        trail = await client.get(
            "/admin/audit",
            params={"event": "admin_action", "user_id": user["id"]},
            headers=bearer(tokens),
        )
        assert len(trail.json()["items"]) == 3
