from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from authapi.app import create_app
from tests.conftest import make_settings
from tests.factories import bearer, registered_login


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200


@pytest.fixture
async def unreachable_database_client(data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    # Port 9 on loopback: nothing listens there, connections are refused at once.
    settings = make_settings(
        "postgresql+asyncpg://postgres@127.0.0.1:9/nothing", data_dir, db_timeout=2
    )
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


class TestDatabaseUnreachable:
    async def test_readyz_is_503(self, unreachable_database_client: httpx.AsyncClient) -> None:
        response = await unreachable_database_client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["error"] == "temporarily_unavailable"
        assert response.headers["retry-after"]

    async def test_database_endpoints_are_503_with_json(
        self, unreachable_database_client: httpx.AsyncClient
    ) -> None:
        for response in (
            await unreachable_database_client.post(
                "/users", json={"email": "a@example.com", "password": "long enough"}
            ),
            await unreachable_database_client.post(
                "/token",
                data={"grant_type": "password", "username": "a@example.com", "password": "x"},
            ),
        ):
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "temporarily_unavailable"

    async def test_token_only_endpoints_keep_working(
        self, client: httpx.AsyncClient, unreachable_database_client: httpx.AsyncClient
    ) -> None:
        # Same data directory, so the same signing key: a token from the healthy app
        # is verified by the one whose database is down.
        _, tokens = await registered_login(client)
        response = await unreachable_database_client.get("/whoami", headers=bearer(tokens))
        assert response.status_code == 200
        jwks = await unreachable_database_client.get("/.well-known/jwks.json")
        assert jwks.status_code == 200
