"""DELETE /admin/users/{id}/mfa, the admin list's mfa_enabled, and `authapi mfa reset`."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from authapi.audit.models import AuditEvent
from authapi.context import AppContext
from authapi.mfa import factors
from authapi.mfa.models import RecoveryCode, TotpFactor
from authapi.sessions.models import LoginSession
from tests.support.clock import FakeClock
from tests.support.factories import bearer, list_all, login, make_admin, refresh, register
from tests.support.servers import authapi_env, run_authapi


async def with_factors(context: AppContext, user: dict[str, Any], now: datetime) -> None:
    """A user with TOTP on and two recovery codes, by rows (as enrolment leaves them)."""
    user_id = uuid.UUID(user["id"])
    async with context.sessionmaker() as db:
        db.add(TotpFactor(user_id=user_id, sealed_secret=b"x" * 40, created_at=now, enabled_at=now))
        for n in range(2):
            db.add(RecoveryCode(user_id=user_id, code_hash=f"{n:064}", created_at=now))
        await db.flush()
        await factors.refresh_flag(db, user_id)
        await db.commit()


async def rows(context: AppContext, table: Any, user: dict[str, Any]) -> int:
    async with context.sessionmaker() as db:
        query = (
            select(func.count()).select_from(table).where(table.user_id == uuid.UUID(user["id"]))
        )
        return int(await db.scalar(query) or 0)


async def active_sessions(context: AppContext, user: dict[str, Any]) -> int:
    async with context.sessionmaker() as db:
        query = select(func.count()).where(
            LoginSession.user_id == uuid.UUID(user["id"]), LoginSession.revoked_at.is_(None)
        )
        return int(await db.scalar(query) or 0)


class TestAdminRemoval:
    async def test_removes_every_factor_and_ends_every_session(
        self, client: httpx.AsyncClient, context: AppContext, clock: FakeClock
    ) -> None:
        _, admin = await make_admin(client, context)
        user = await register(client)
        tokens = await login(client, user["email"])
        await with_factors(context, user, clock.now())
        me = await client.get("/users/me", headers=bearer(tokens))
        assert me.json()["mfa_enabled"] is True

        response = await client.delete(f"/admin/users/{user['id']}/mfa", headers=bearer(admin))
        assert response.status_code == 204
        assert await rows(context, TotpFactor, user) == 0
        assert await rows(context, RecoveryCode, user) == 0
        assert await active_sessions(context, user) == 0
        assert (await refresh(client, tokens["refresh_token"])).status_code == 400
        async with context.sessionmaker() as db:
            event = await db.scalar(
                select(AuditEvent).where(AuditEvent.event == "second_factors_off")
            )
        assert event is not None
        assert str(event.user_id) == user["id"]
        # And the password alone logs in again.
        again = await login(client, user["email"])
        assert (await client.get("/users/me", headers=bearer(again))).json()["mfa_enabled"] is False

    async def test_unknown_user_is_404(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        _, admin = await make_admin(client, context)
        response = await client.delete(f"/admin/users/{uuid.uuid4()}/mfa", headers=bearer(admin))
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"

    async def test_not_for_a_user(
        self, client: httpx.AsyncClient, context: AppContext, clock: FakeClock
    ) -> None:
        user = await register(client)
        await with_factors(context, user, clock.now())
        tokens = await login(client, (await register(client))["email"])
        response = await client.delete(f"/admin/users/{user['id']}/mfa", headers=bearer(tokens))
        assert response.status_code == 403
        assert await rows(context, TotpFactor, user) == 1


class TestAdminList:
    async def test_shows_and_filters_mfa_enabled(
        self, client: httpx.AsyncClient, context: AppContext, clock: FakeClock
    ) -> None:
        admin_user, admin = await make_admin(client, context)
        user = await register(client)
        await with_factors(context, user, clock.now())
        on = [item for page in await list_all(client, admin, mfa_enabled="true") for item in page]
        off = [item for page in await list_all(client, admin, mfa_enabled="false") for item in page]
        assert [item["id"] for item in on] == [user["id"]]
        assert on[0]["mfa_enabled"] is True
        assert admin_user["id"] in [item["id"] for item in off]
        assert all(item["mfa_enabled"] is False for item in off)


class TestCliReset:
    async def test_resets_and_says_what_it_did(
        self,
        client: httpx.AsyncClient,
        context: AppContext,
        clock: FakeClock,
        database_url: str,
        data_dir: Path,
        tmp_path: Path,
    ) -> None:
        user = await register(client)
        await login(client, user["email"])
        await with_factors(context, user, clock.now())
        env = authapi_env(database_url, data_dir)
        result = run_authapi("mfa", "reset", user["email"], env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "removed 1 TOTP" in result.stdout
        assert "2 recovery codes" in result.stdout
        assert "ended 1 sessions" in result.stdout
        assert await rows(context, TotpFactor, user) == 0
        assert await active_sessions(context, user) == 0

    async def test_unknown_email_exits_1(
        self, database_url: str, data_dir: Path, tmp_path: Path
    ) -> None:
        env = authapi_env(database_url, data_dir)
        result = run_authapi("mfa", "reset", "nobody@example.org", env=env, cwd=tmp_path)
        assert result.returncode == 1
        assert "no user with email nobody@example.org" in result.stderr
