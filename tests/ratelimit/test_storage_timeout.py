"""A hung rate-limit storage (Redis paused with SIGSTOP) answers 503 at once, bounded by
`AUTHAPI_RATE_LIMIT_STORAGE_TIMEOUT`, instead of holding every request; after SIGCONT
the limits work again without a restart."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from authapi.app import create_app
from tests.support.redis import throwaway_redis
from tests.support.settings import make_settings

# A generous bound that only stops a broken test from hanging; no speed is asserted.
HANG_GUARD = 60.0


@pytest.fixture
async def client_on_redis(
    database_url: str, data_dir: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, subprocess.Popen[bytes]]]:
    with throwaway_redis() as redis:
        settings = make_settings(
            database_url,
            data_dir,
            rate_limit_storage=redis.url,
            rate_limit_storage_timeout=0.2,
        )
        app = create_app(settings)
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield client, redis.process


async def refresh_with_forged_token(client: httpx.AsyncClient) -> httpx.Response:
    return await client.post("/refresh", json={"refresh_token": "rt_forged"})


class TestHungStorage:
    async def test_requests_get_503_while_paused_and_work_after(
        self, client_on_redis: tuple[httpx.AsyncClient, subprocess.Popen[bytes]]
    ) -> None:
        client, redis = client_on_redis
        assert (await refresh_with_forged_token(client)).status_code == 400  # Redis answers
        os.kill(redis.pid, signal.SIGSTOP)
        try:
            async with asyncio.timeout(HANG_GUARD):
                responses = await asyncio.gather(
                    *(refresh_with_forged_token(client) for _ in range(31)),
                    client.post(
                        "/token",
                        data={
                            "grant_type": "password",
                            "username": "a@example.com",
                            "password": "x",
                        },
                    ),
                )
            # All answered while Redis is still paused (resumed only below), and by a
            # live server: none of them waited for it, none met a refused connection.
            assert redis.poll() is None
            for response in responses:
                assert response.status_code == 503, response.text
                assert response.json()["error"] == "temporarily_unavailable"
                assert response.headers["retry-after"] == "1"
        finally:
            os.kill(redis.pid, signal.SIGCONT)
        assert (await refresh_with_forged_token(client)).status_code == 400
