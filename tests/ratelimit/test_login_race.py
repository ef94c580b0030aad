"""Concurrent password guesses against one account: each is counted before its hash is
verified, so a burst cannot overtake the throttle (in one process, and across
instances sharing Redis)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import func, select

from authapi.app import create_app
from authapi.audit.models import AuditEvent
from authapi.context import AppContext
from tests.support.factories import PASSWORD, password_form, register
from tests.support.redis import REDIS_URL
from tests.support.settings import CHEAP_HASHES, make_settings

GUESSES = 40
LIMIT = 10
# Cheap hashes, and room for every guess in the hash queue: only the throttle refuses.
RACE_SETTINGS: dict[str, Any] = {
    "rate_limit_login_failures": f"{LIMIT}/15 minutes",
    **CHEAP_HASHES,
    "hash_queue": 2 * GUESSES,
}


async def verified_passwords(context: AppContext) -> int:
    """How many password attempts were verified: each leaves one audit row."""
    async with context.sessionmaker() as db:
        count = await db.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.event.in_(["login_failed", "login_succeeded"]))
        )
    return int(count or 0)


async def guess_concurrently(clients: list[httpx.AsyncClient], email: str) -> list[int]:
    """GUESSES concurrent attempts, spread over `clients`; the last one is right."""
    passwords = [f"wrong guess {n}" for n in range(GUESSES - 1)] + [PASSWORD]
    responses = await asyncio.gather(
        *(
            clients[n % len(clients)].post("/token", data=password_form(email, password))
            for n, password in enumerate(passwords)
        )
    )
    return [response.status_code for response in responses]


class TestConcurrentGuesses:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return RACE_SETTINGS

    async def test_at_most_the_limit_are_verified(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user = await register(client)
        statuses = await guess_concurrently([client], user["email"])
        assert await verified_passwords(context) <= LIMIT
        assert statuses.count(429) >= GUESSES - LIMIT
        assert set(statuses) <= {400, 200, 429}

    async def test_password_changes_are_counted_before_verifying(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user = await register(client)
        login = await client.post("/token", data=password_form(user["email"]))
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        responses = await asyncio.gather(
            *(
                client.post(
                    "/users/me/password",
                    json={"current_password": f"wrong {n}", "new_password": "another secret"},
                    headers=headers,
                )
                for n in range(GUESSES)
            )
        )
        statuses = [response.status_code for response in responses]
        # The login above was the first attempt of the window.
        assert set(statuses) <= {403, 429}
        assert statuses.count(403) <= LIMIT - 1
        assert statuses.count(429) >= GUESSES - (LIMIT - 1)


@pytest.fixture
async def redis_instances(
    database_url: str, data_dir: Path
) -> AsyncIterator[tuple[list[httpx.AsyncClient], AppContext]]:
    """Two app instances counting in the same Redis, under a key prefix of their own."""
    settings = make_settings(
        database_url,
        data_dir,
        rate_limit_storage=REDIS_URL,
        rate_limit_key_prefix=f"authapi-test-{uuid.uuid4().hex}",
        **RACE_SETTINGS,
    )
    first, second = create_app(settings), create_app(settings)
    async with LifespanManager(first), LifespanManager(second):
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://a") as a,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://b") as b,
        ):
            yield [a, b], first.state.context


class TestConcurrentGuessesAcrossInstances:
    async def test_at_most_the_limit_are_verified(
        self, redis_instances: tuple[list[httpx.AsyncClient], AppContext]
    ) -> None:
        clients, context = redis_instances
        email = f"{uuid.uuid4().hex}@example.com"
        await register(clients[0], email=email)
        before = await verified_passwords(context)  # the database is shared, not emptied
        statuses = await guess_concurrently(clients, email)
        assert await verified_passwords(context) - before <= LIMIT
        assert statuses.count(429) >= GUESSES - LIMIT
