"""The audit trail: every auth event recorded, no secret in it, readable by admins."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from authapi.audit import service as audit
from authapi.audit.models import AuditEvent
from authapi.client_address import Requester
from authapi.context import AppContext
from authapi.db import PendingWrites, end_read_only_transaction
from tests.support.clock import FakeClock
from tests.support.factories import (
    PASSWORD,
    bearer,
    login,
    make_admin,
    refresh,
    register,
    registered_login,
)
from tests.support.servers import authapi_env, run_authapi


async def events(context: AppContext) -> list[AuditEvent]:
    async with context.sessionmaker() as db:
        return list(await db.scalars(select(AuditEvent).order_by(AuditEvent.id)))


async def event_names(context: AppContext) -> list[str]:
    return [e.event for e in await events(context)]


class TestRecording:
    async def test_a_whole_flow_is_recorded(
        self, client: httpx.AsyncClient, context: AppContext, clock: FakeClock
    ) -> None:
        user = await register(client)
        await client.post(
            "/token",
            data={"grant_type": "password", "username": user["email"], "password": "wrong one"},
            headers={"User-Agent": "Attacker/1.0"},
        )
        await client.post(
            "/token",
            data={"grant_type": "password", "username": "nobody@example.com", "password": "x"},
        )
        tokens = await login(client, user["email"])
        rotated = (await refresh(client, tokens["refresh_token"])).json()
        second = await login(client, user["email"])
        sid = (await client.get("/whoami", headers=bearer(second))).json()["sid"]
        await client.delete(f"/sessions/{sid}", headers=bearer(rotated))
        await client.post(
            "/users/me/password",
            json={"current_password": PASSWORD, "new_password": "a new password"},
            headers=bearer(rotated),
        )
        third = await login(client, user["email"], "a new password")
        await client.post("/revoke", data={"token": third["refresh_token"]})
        fourth = await login(client, user["email"], "a new password")
        await client.post("/logout", json={"refresh_token": fourth["refresh_token"]})
        fifth = await login(client, user["email"], "a new password")
        (await refresh(client, fifth["refresh_token"])).json()
        clock.advance(60)
        await refresh(client, fifth["refresh_token"])  # replay after the grace window
        await client.delete("/sessions", headers=bearer(rotated))

        assert await event_names(context) == [
            "user_registered",
            "login_failed",
            "login_failed",
            "login_succeeded",
            "refresh",
            "login_succeeded",
            "session_revoked",
            "password_changed",
            "login_succeeded",
            "revoke",
            "login_succeeded",
            "logout",
            "login_succeeded",
            "refresh",
            "reuse_detected",
            "all_sessions_revoked",
        ]
        recorded = await events(context)
        failed_known, failed_unknown = recorded[1], recorded[2]
        assert str(failed_known.user_id) == user["id"]
        assert failed_known.user_agent == "Attacker/1.0"
        assert failed_unknown.user_id is None
        assert all(e.ip for e in recorded)
        reuse = recorded[-2]
        assert str(reuse.user_id) == user["id"]
        assert reuse.session_id is not None

    async def test_no_secret_is_ever_recorded(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user, tokens = await registered_login(client)
        rotated = (await refresh(client, tokens["refresh_token"])).json()
        await client.post(
            "/token",
            data={"grant_type": "password", "username": user["email"], "password": "my wrong pw"},
        )
        await client.post("/logout", json={"refresh_token": rotated["refresh_token"]})
        async with context.engine.connect() as connection:
            dumped = repr((await connection.exec_driver_sql("SELECT * FROM audit_events")).all())
        secrets = [PASSWORD, "my wrong pw", tokens["access_token"], rotated["access_token"]]
        secrets += [t["refresh_token"].removeprefix("rt_") for t in (tokens, rotated)]
        for secret in secrets:
            assert secret not in dumped

    @pytest.mark.parametrize("settings_overrides", [{"rate_limit_token": "1/minute"}])
    async def test_rate_limiting_is_recorded_once_a_minute(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        for _ in range(5):
            await client.post("/token", data={"grant_type": "password"})
        names = await event_names(context)
        assert names.count("rate_limited") == 1
        assert (await events(context))[-1].detail == "token"

    @pytest.mark.parametrize("settings_overrides", [{"rate_limit_login_failures": "1/minute"}])
    async def test_account_throttling_is_recorded(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user = await register(client)
        for _ in range(4):
            await client.post(
                "/token",
                data={"grant_type": "password", "username": user["email"], "password": "nope"},
            )
        throttled = [e for e in await events(context) if e.event == "rate_limited"]
        assert len(throttled) == 1
        assert throttled[0].detail == "login_failures"
        assert str(throttled[0].user_id) == user["id"]


class TestInsertNow:
    """The refresh path's INSERT, sent at once rather than at the flush."""

    async def test_is_sent_at_once_and_goes_with_the_transaction(
        self, db_session: AsyncSession
    ) -> None:
        at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        user_id, session_id = uuid.uuid4(), uuid.uuid4()
        await audit.insert_now(
            db_session,
            audit.Event.REFRESH,
            at=at,
            requester=Requester(ip="192.0.2.7", user_agent="Client/2.0"),
            user_id=user_id,
            session_id=session_id,
        )
        assert not db_session.new  # nothing left for a flush: the row is already sent
        # Other tests' rows may be there (the app's tests empty the tables first, not after).
        mine = select(AuditEvent).where(AuditEvent.session_id == session_id)
        (row,) = await db_session.scalars(mine)
        assert (row.at, row.event, row.user_id, row.session_id) == (
            at,
            "refresh",
            user_id,
            session_id,
        )
        assert (row.ip, row.user_agent, row.detail) == ("192.0.2.7", "Client/2.0", None)
        await db_session.rollback()
        assert list(await db_session.scalars(mine)) == []

    async def test_counts_as_a_write(self, db_session: AsyncSession) -> None:
        # A transaction that sent it must not be ended early as if it had only read.
        await audit.insert_now(
            db_session,
            audit.Event.REFRESH,
            at=datetime.now(UTC),
            requester=Requester(ip="192.0.2.7", user_agent=None),
        )
        with pytest.raises(PendingWrites):
            await end_read_only_transaction(db_session)


class TestAdminAudit:
    async def test_needs_an_admin(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/admin/audit")).status_code == 401
        _, tokens = await registered_login(client)
        response = await client.get("/admin/audit", headers=bearer(tokens))
        assert response.status_code == 403
        assert response.json()["error"] == "insufficient_role"

    async def test_lists_newest_first_with_filters(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        alice, _ = await registered_login(client)
        await registered_login(client)
        _, admin = await make_admin(client, context)
        response = await client.get("/admin/audit", headers=bearer(admin))
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        items = response.json()["items"]
        assert [i["id"] for i in items] == sorted((i["id"] for i in items), reverse=True)
        assert len(items) == 6

        by_user = await client.get(
            "/admin/audit", params={"user_id": alice["id"]}, headers=bearer(admin)
        )
        assert {i["event"] for i in by_user.json()["items"]} == {
            "user_registered",
            "login_succeeded",
        }
        by_event = await client.get(
            "/admin/audit", params={"event": "login_succeeded"}, headers=bearer(admin)
        )
        assert len(by_event.json()["items"]) == 3
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        later = await client.get("/admin/audit", params={"since": future}, headers=bearer(admin))
        assert later.json()["items"] == []
        earlier = await client.get("/admin/audit", params={"until": future}, headers=bearer(admin))
        assert len(earlier.json()["items"]) == 6

    async def test_pagination(self, client: httpx.AsyncClient, context: AppContext) -> None:
        for _ in range(3):
            await registered_login(client)
        _, admin = await make_admin(client, context)
        seen: list[int] = []
        params: dict[str, Any] = {"limit": 3}
        for _ in range(10):
            page = (await client.get("/admin/audit", params=params, headers=bearer(admin))).json()
            seen += [i["id"] for i in page["items"]]
            if page["next_before"] is None:
                break
            params["before"] = page["next_before"]
        assert len(seen) == 8
        assert seen == sorted(seen, reverse=True)

    @pytest.mark.parametrize(
        "params",
        [
            {"limit": 0},
            {"limit": 201},
            {"before": -1},
            {"event": "made_up"},
            {"user_id": "nope"},
            {"since": "2026-01-01T00:00:00"},  # no time zone: ambiguous
        ],
    )
    async def test_bad_filters_are_422(
        self, client: httpx.AsyncClient, context: AppContext, params: dict[str, Any]
    ) -> None:
        _, admin = await make_admin(client, context)
        response = await client.get("/admin/audit", params=params, headers=bearer(admin))
        assert response.status_code == 422
        assert response.json()["error"] == "invalid_request"


class TestPrune:
    async def test_old_events_are_pruned(
        self, client: httpx.AsyncClient, context: AppContext, database_url: str, tmp_path: Path
    ) -> None:
        await registered_login(client)
        async with context.sessionmaker() as db:
            await db.execute(update(AuditEvent).values(at=datetime.now(UTC) - timedelta(days=91)))
            await db.commit()
        await registered_login(client)
        result = run_authapi(
            "prune", env=authapi_env(database_url, context.settings.data_dir), cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        assert "deleted 2 audit events older than 90 days" in result.stdout
        assert await event_names(context) == ["user_registered", "login_succeeded"]


async def add_trail(db: AsyncSession, count: int, users: list[uuid.UUID], start: datetime) -> None:
    """`count` events a minute apart from `start`, ids growing with time as in a real
    trail: refreshes mostly, a password change every 100th, the users in turn; then
    ANALYZE, so that the planner knows the table's shape (rolled back with the rest)."""
    rows = [
        {
            "at": start + timedelta(minutes=n),
            "event": "password_changed" if n % 100 == 0 else "refresh",
            "user_id": users[n % len(users)],
            "ip": "192.0.2.1",
        }
        for n in range(count)
    ]
    await db.execute(insert(AuditEvent), rows)
    await db.execute(text("ANALYZE audit_events"))


async def query_plan(db: AsyncSession, sql: str) -> str:
    """The database's plan of `sql`, as text: PostgreSQL's EXPLAIN or SQLite's EXPLAIN
    QUERY PLAN."""
    connection = await db.connection()
    if connection.dialect.name == "sqlite":
        result = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")
        return "\n".join(str(row[-1]) for row in result)
    result = await connection.exec_driver_sql(f"EXPLAIN {sql}")
    return "\n".join(str(row[0]) for row in result)


def literal_sql(db: AsyncSession, query: Any) -> str:
    dialect = db.get_bind().dialect
    return str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


class TestListingPlan:
    """The admin's listings by user and by event read one range of an index backwards,
    newest first: no sort of every matching event, however long the trail."""

    @pytest.mark.parametrize(
        ("by", "index"),
        [("user_id", "ix_audit_events_user_id_id"), ("event", "ix_audit_events_event_id")],
    )
    @pytest.mark.parametrize("next_page", [False, True])
    async def test_a_page_is_a_range_of_the_index(
        self, db_session: AsyncSession, by: str, index: str, next_page: bool
    ) -> None:
        # Each user and the password changes are 1 % or less of the trail: a scan of
        # the newest events would pass over most of them (PostgreSQL then sorted).
        users = [uuid.uuid4() for _ in range(200)]
        await add_trail(db_session, 5000, users, datetime(2026, 1, 1, tzinfo=UTC))
        value: Any = users[3] if by == "user_id" else audit.Event.PASSWORD_CHANGED
        filters: dict[str, Any] = {by: value}
        if next_page:
            first = list(await db_session.scalars(audit.listing(limit=10, **filters)))
            filters["before"] = first[-1].id
        query = audit.listing(limit=10, **filters)
        plan = await query_plan(db_session, literal_sql(db_session, query))
        assert index in plan, plan
        assert "Sort" not in plan, plan  # PostgreSQL's
        assert "TEMP B-TREE" not in plan, plan  # SQLite's
        rows = list(await db_session.scalars(query))
        assert len(rows) == 10
        assert [row.id for row in rows] == sorted((row.id for row in rows), reverse=True)
        assert {getattr(row, by) for row in rows} == {value}
        assert all(row.id < filters.get("before", 2**63) for row in rows)


class TestPruneBatch:
    """`authapi prune` takes the audit trail's oldest events first, off the index of
    times: with no order PostgreSQL read each batch from a scan of the table, past
    every event the batches before it had deleted."""

    START = datetime(2001, 1, 1, tzinfo=UTC)  # older than any other test's events
    CUTOFF = START + timedelta(minutes=2000)

    async def add_expiring(self, db: AsyncSession) -> None:
        """3,000 events a minute apart from START, written newest first (so that the
        table's order is not the order of times); the first 2,000 end before CUTOFF."""
        rows = [
            {"at": self.START + timedelta(minutes=n), "event": "refresh", "ip": "192.0.2.9"}
            for n in reversed(range(3000))
        ]
        await db.execute(insert(AuditEvent), rows)
        await db.execute(text("ANALYZE audit_events"))

    async def mine(self, db: AsyncSession) -> list[datetime]:
        query = select(AuditEvent.at).where(AuditEvent.at < self.START + timedelta(days=3))
        return sorted(await db.scalars(query))

    async def test_a_batch_is_read_off_the_index_of_times(
        self, db_session: AsyncSession, db_engine: AsyncEngine
    ) -> None:
        await self.add_expiring(db_session)
        sent: list[tuple[str, Any]] = []

        def note(*args: Any) -> None:
            sent.append((str(args[2]), args[3]))

        event.listen(db_engine.sync_engine, "before_cursor_execute", note)
        try:
            assert await audit.prune_batch(db_session, self.CUTOFF, 100) == 100
        finally:
            event.remove(db_engine.sync_engine, "before_cursor_execute", note)
        (statement, parameters) = next(s for s in sent if s[0].startswith("DELETE"))
        connection = await db_session.connection()
        if connection.dialect.name == "sqlite":
            explain = f"EXPLAIN QUERY PLAN {statement}"
            plan = [str(row[-1]) for row in await connection.exec_driver_sql(explain, parameters)]
        else:
            explain = f"EXPLAIN {statement}"
            plan = [str(row[0]) for row in await connection.exec_driver_sql(explain, parameters)]
        # The batch's own scan: PostgreSQL's plan under its LIMIT (the DELETE around it
        # may join the hundred ids to a table this small by scanning it).
        batch = plan[next((n for n, line in enumerate(plan) if "Limit" in line), 0) :]
        assert any("ix_audit_events_at" in line for line in batch), plan
        assert not any(word in line for line in batch for word in ("Seq Scan", "Sort")), plan
        assert not any("TEMP B-TREE" in line for line in plan), plan  # SQLite's sort
        # The oldest hundred went.
        assert (await self.mine(db_session))[0] == self.START + timedelta(minutes=100)

    async def test_deletes_exactly_the_expired_events(self, db_session: AsyncSession) -> None:
        await self.add_expiring(db_session)
        deleted = [await audit.prune_batch(db_session, self.CUTOFF, 300) for _ in range(8)]
        assert deleted == [300] * 6 + [200, 0]
        left = await self.mine(db_session)
        assert left == [self.START + timedelta(minutes=n) for n in range(2000, 3000)]
