"""Rate limits per client address and per account, on memory and on Redis storage."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from authapi.app import create_app
from authapi.context import AppContext
from tests.support.factories import (
    PASSWORD,
    bearer,
    hashing_blocked,
    password_form,
    register,
    registered_login,
)
from tests.support.ratelimit import assert_rate_limited
from tests.support.redis import REDIS_URL
from tests.support.settings import make_settings

Call = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]

# Each per-address limit, and a request that counts against it.
ADDRESS_LIMITS: dict[str, tuple[str, Call]] = {
    "token": (
        "rate_limit_token",
        lambda c: c.post("/token", data=password_form("nobody@example.com")),
    ),
    "refresh": (
        "rate_limit_refresh_address",
        lambda c: c.post("/refresh", json={"refresh_token": "x"}),
    ),
    "refresh grant": (
        "rate_limit_refresh_address",
        lambda c: c.post("/token", data={"grant_type": "refresh_token", "refresh_token": "x"}),
    ),
    "register": (
        "rate_limit_register",
        lambda c: c.post(
            "/users", json={"email": f"{uuid.uuid4()}@example.com", "password": PASSWORD}
        ),
    ),
    "revoke": ("rate_limit_revoke", lambda c: c.post("/revoke", data={"token": "x"})),
    "logout": ("rate_limit_revoke", lambda c: c.post("/logout", json={"refresh_token": "x"})),
}


class TestPerAddress:
    @pytest.fixture(params=list(ADDRESS_LIMITS))
    def limited(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    def settings_overrides(self, limited: str) -> dict[str, object]:
        return {ADDRESS_LIMITS[limited][0]: "3/minute", "trusted_proxies": ["127.0.0.1"]}

    async def test_fourth_request_is_refused(self, client: httpx.AsyncClient, limited: str) -> None:
        call = ADDRESS_LIMITS[limited][1]
        for _ in range(3):
            assert (await call(client)).status_code != 429
        assert_rate_limited(await call(client))

    async def test_other_addresses_are_not_affected(
        self, client: httpx.AsyncClient, limited: str
    ) -> None:
        call = ADDRESS_LIMITS[limited][1]
        for _ in range(4):
            await call(client)
        client.headers["X-Forwarded-For"] = "203.0.113.7"
        assert (await call(client)).status_code != 429


class TestFailedLogins:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"rate_limit_login_failures": "3/15 minutes"}

    async def test_account_is_throttled_even_for_the_right_password(
        self, client: httpx.AsyncClient
    ) -> None:
        user = await register(client)
        for _ in range(3):
            response = await client.post("/token", data=password_form(user["email"], "wrong guess"))
            assert response.json()["error"] == "invalid_grant"
        assert_rate_limited(await client.post("/token", data=password_form(user["email"])), 900)

    async def test_other_accounts_are_not_affected(self, client: httpx.AsyncClient) -> None:
        victim = await register(client)
        bystander = await register(client)
        for _ in range(4):
            await client.post("/token", data=password_form(victim["email"], "wrong guess"))
        assert (
            await client.post("/token", data=password_form(bystander["email"]))
        ).status_code == 200

    async def test_successes_count_too(self, client: httpx.AsyncClient) -> None:
        # Every attempt is counted before its password is verified: nothing is refunded.
        user = await register(client)
        for _ in range(3):
            assert (
                await client.post("/token", data=password_form(user["email"]))
            ).status_code == 200
        assert_rate_limited(await client.post("/token", data=password_form(user["email"])), 900)

    async def test_case_variants_are_one_account(self, client: httpx.AsyncClient) -> None:
        user = await register(client, email="carol@example.com")
        for variant in ("CAROL@example.com", "carol@EXAMPLE.com", " Carol@Example.Com"):
            await client.post("/token", data=password_form(variant, "wrong guess"))
        assert_rate_limited(await client.post("/token", data=password_form(user["email"])), 900)

    async def test_unknown_accounts_are_throttled_alike(self, client: httpx.AsyncClient) -> None:
        for _ in range(3):
            await client.post("/token", data=password_form("ghost@example.com", "guess"))
        assert_rate_limited(
            await client.post("/token", data=password_form("ghost@example.com")), 900
        )

    async def test_throttled_attempts_cost_no_hash(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        for _ in range(3):
            await client.post("/token", data=password_form("ghost@example.com", "guess"))
        # With every hashing thread blocked, a throttled attempt still answers at once.
        with hashing_blocked(context):
            response = await client.post("/token", data=password_form("ghost@example.com"))
            assert_rate_limited(response, 900)
            assert context.hasher.pending == 0

    async def test_wrong_current_password_counts_too(self, client: httpx.AsyncClient) -> None:
        user, tokens = await registered_login(client)  # the first of 3 attempts
        for _ in range(2):
            response = await client.post(
                "/users/me/password",
                json={"current_password": "wrong guess", "new_password": "another secret"},
                headers=bearer(tokens),
            )
            assert response.status_code == 403
        response = await client.post(
            "/users/me/password",
            json={"current_password": PASSWORD, "new_password": "another secret"},
            headers=bearer(tokens),
        )
        assert_rate_limited(response, 900)
        assert_rate_limited(await client.post("/token", data=password_form(user["email"])), 900)


class TestDisabled:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"rate_limit_enabled": False, "rate_limit_token": "1/minute"}

    async def test_no_limits(self, client: httpx.AsyncClient) -> None:
        for _ in range(3):
            response = await client.post("/token", data=password_form("a@example.com"))
            assert response.status_code == 400


@pytest.fixture
async def redis_pair(
    database_url: str, data_dir: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two app instances counting in the same Redis, under a storage key of their own."""
    prefix = f"authapi-test-{uuid.uuid4().hex}"
    settings = make_settings(
        database_url,
        data_dir,
        rate_limit_storage=REDIS_URL,
        rate_limit_key_prefix=prefix,
        rate_limit_token="3/minute",
    )
    first, second = create_app(settings), create_app(settings)
    async with LifespanManager(first), LifespanManager(second):
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://a") as a,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://b") as b,
        ):
            yield a, b


class TestRedisStorage:
    async def test_instances_share_the_counts(
        self, redis_pair: tuple[httpx.AsyncClient, httpx.AsyncClient]
    ) -> None:
        a, b = redis_pair
        for client in (a, b, a):
            assert (
                await client.post("/token", data=password_form("x@example.com"))
            ).status_code == 400
        assert_rate_limited(await b.post("/token", data=password_form("x@example.com")))

    @pytest.mark.parametrize("settings_overrides", [{"rate_limit_storage": "redis://127.0.0.1:9"}])
    async def test_unreachable_storage_refuses_rather_than_opens(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post("/token", data=password_form("x@example.com"))
        assert response.status_code == 503
        assert response.json()["error"] == "temporarily_unavailable"


class TestBoundedHashing:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"hash_workers": 1, "hash_queue": 2}

    async def test_past_the_queue_logins_get_503_at_once(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user = await register(client)
        with hashing_blocked(context):  # its thread is the only one: every login waits
            tasks = [
                asyncio.create_task(client.post("/token", data=password_form(user["email"])))
                for _ in range(6)
            ]
            for _ in range(100_000):
                if sum(task.done() for task in tasks) == 3:
                    break
                await asyncio.sleep(0)
            refused = [task.result() for task in tasks if task.done()]
            assert len(refused) == 3
            for response in refused:
                assert response.status_code == 503
                assert response.json()["error"] == "temporarily_unavailable"
                assert response.headers["retry-after"] == "1"
            assert context.hasher.pending == 3  # 1 hashing (after the block) + 2 queued
        answered = await asyncio.gather(*tasks)
        assert sorted(r.status_code for r in answered) == [200, 200, 200, 503, 503, 503]
