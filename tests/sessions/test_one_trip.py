"""The common refresh on PostgreSQL in one statement of its own (sessions/one_trip.py),
and what it leaves to the general way: on SQLite every refresh goes that way; on
PostgreSQL a disabled user, a narrowed scope and the grace window do. The rules
themselves, on both databases: tests/sessions/test_rotation.py. Each try is counted by
outcome in `authapi_one_statement_refreshes_total` (advanced, declined, failed)."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from authapi.audit.models import AuditEvent
from authapi.config import Settings
from authapi.context import AppContext
from authapi.sessions.models import LoginSession
from tests.support.factories import refresh, registered_login, statements_sent, update_user
from tests.support.metrics import METRICS_TOKEN, Change
from tests.support.settings import make_settings

ONE_STATEMENT = "authapi_one_statement_refreshes_total"
OUTCOMES = ("advanced", "declined", "failed")


@pytest.fixture
def settings(database_url: str, data_dir: Path, settings_overrides: dict[str, object]) -> Settings:
    """Scraped with the metrics token (GET /metrics is not served without one)."""
    return make_settings(
        database_url, data_dir, **{"metrics_token": METRICS_TOKEN, **settings_overrides}
    )


def outcomes(change: Change) -> dict[str, float]:
    return {outcome: change(ONE_STATEMENT, outcome=outcome) for outcome in OUTCOMES}


async def generation_of(context: AppContext, tokens: dict[str, str]) -> int:
    claims = context.refresh_tokens.decode(tokens["refresh_token"])
    assert claims is not None
    async with context.sessionmaker() as db:
        session = await db.get(LoginSession, claims.session_id)
        assert session is not None
        return session.generation


async def refreshes_recorded(context: AppContext, user: dict[str, str]) -> int:
    async with context.sessionmaker() as db:
        query = select(func.count()).where(
            AuditEvent.event == "refresh", AuditEvent.user_id == uuid.UUID(user["id"])
        )
        return int(await db.scalar(query) or 0)


async def test_postgresql_answers_a_refresh_with_one_statement_of_its_own(
    client: httpx.AsyncClient, context: AppContext, backend: str
) -> None:
    user, tokens = await registered_login(client)
    before = await generation_of(context, tokens)
    with statements_sent(context) as statements:
        response = await refresh(client, tokens["refresh_token"])
    assert response.status_code == 200, response.text
    if backend == "postgresql":
        assert statements == []  # none through SQLAlchemy: the driver sent the one
        assert context.one_trip is not None
    else:
        assert any(s.startswith("UPDATE sessions") for s in statements)
        assert context.one_trip is None
    assert await generation_of(context, tokens) == before + 1
    assert await refreshes_recorded(context, user) == 1


async def test_a_disabled_users_session_does_not_advance(
    client: httpx.AsyncClient, context: AppContext
) -> None:
    user, tokens = await registered_login(client)
    before = await generation_of(context, tokens)
    await update_user(context, user, is_active=False)
    response = await refresh(client, tokens["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert await generation_of(context, tokens) == before
    assert await refreshes_recorded(context, user) == 0


async def test_a_scope_that_does_not_fit_leaves_the_session_as_it_was(
    client: httpx.AsyncClient, context: AppContext
) -> None:
    user, tokens = await registered_login(client)
    before = await generation_of(context, tokens)
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    refused = await client.post("/token", data={**form, "scope": "admin"})
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_scope"
    assert await generation_of(context, tokens) == before
    assert await refreshes_recorded(context, user) == 0
    narrowed = await client.post("/token", data={**form, "scope": "profile"})
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["scope"] == "profile"
    assert await generation_of(context, tokens) == before + 1


async def test_a_hostile_host_changes_nothing_of_the_answer(
    client: httpx.AsyncClient, context: AppContext
) -> None:
    _, tokens = await registered_login(client)
    response = await client.post(
        "/refresh",
        json={"refresh_token": tokens["refresh_token"]},
        headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example\x00"},
    )
    assert response.status_code == 200, response.text
    claims = context.access_tokens.verify(response.json()["access_token"])
    assert claims["iss"] == context.settings.issuer


class TestOutcomesCounted:
    async def test_an_advanced_refresh(self, client: httpx.AsyncClient, backend: str) -> None:
        _, tokens = await registered_login(client)
        async with Change(client) as change:
            assert (await refresh(client, tokens["refresh_token"])).status_code == 200
        # On SQLite there is no one statement: every refresh goes the general way, uncounted.
        advanced = 1 if backend == "postgresql" else 0
        assert outcomes(change) == {"advanced": advanced, "declined": 0, "failed": 0}

    @pytest.mark.parametrize("backend", ["postgresql"])
    async def test_a_repeat_in_the_grace_window_is_declined(
        self, client: httpx.AsyncClient
    ) -> None:
        _, tokens = await registered_login(client)
        async with Change(client) as change:
            first = await refresh(client, tokens["refresh_token"])
            again = await refresh(client, tokens["refresh_token"])  # one generation behind
        assert (first.status_code, again.status_code) == (200, 200)
        assert again.json()["refresh_token"] == first.json()["refresh_token"]
        assert outcomes(change) == {"advanced": 1, "declined": 1, "failed": 0}

    @pytest.mark.parametrize("backend", ["postgresql"])
    async def test_a_dead_connection_fails_and_the_general_way_answers(
        self, client: httpx.AsyncClient, context: AppContext, database_url: str
    ) -> None:
        _, tokens = await registered_login(client)
        # One idle connection in the app's pool, then its server process ended (as a
        # restart or an idle timeout would): the one statement is the next to use it.
        await context.engine.dispose()
        async with context.engine.connect() as connection:
            pid = await connection.scalar(text("SELECT pg_backend_pid()"))
        admin = make_url(database_url).set(drivername="postgresql")
        other = await asyncpg.connect(admin.render_as_string(hide_password=False))
        try:
            # With a timeout, pg_terminate_backend waits until the process has ended.
            assert await other.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
        finally:
            await other.close()
        async with Change(client) as change:
            response = await refresh(client, tokens["refresh_token"])
        assert response.status_code == 200, response.text
        assert outcomes(change) == {"advanced": 0, "declined": 0, "failed": 1}
