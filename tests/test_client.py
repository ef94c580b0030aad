"""authapi.client.AuthapiAuth against the real app: in-process for httpx.AsyncClient,
as a real server for httpx.Client."""

from __future__ import annotations

import asyncio
import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from authapi.audit.models import AuditEvent
from authapi.client import AuthapiAuth, AuthapiError
from authapi.context import AppContext
from tests.factories import PASSWORD, register
from tests.test_cli import serving


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def spoil_access_token(auth: AuthapiAuth) -> None:
    """Make the next request go out with a token the server refuses (401)."""
    assert auth._tokens is not None
    auth._tokens = dataclasses.replace(auth._tokens, access="not-a-valid-token")


async def count(context: AppContext, event: str) -> int:
    async with context.sessionmaker() as db:
        query = select(func.count()).select_from(AuditEvent).where(AuditEvent.event == event)
        return int(await db.scalar(query) or 0)


def client_for(app: FastAPI, auth: AuthapiAuth) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", auth=auth
    )


class TestAsyncClient:
    async def test_logs_in_once_for_many_concurrent_requests(
        self, app: FastAPI, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user = await register(client)
        auth = AuthapiAuth("http://testserver/token", username=user["email"], password=PASSWORD)
        async with client_for(app, auth) as http:
            responses = await asyncio.gather(*(http.get("/whoami") for _ in range(20)))
        assert {r.status_code for r in responses} == {200}
        assert {r.json()["sub"] for r in responses} == {user["id"]}
        assert await count(context, "login_succeeded") == 1

    async def test_refreshes_shortly_before_expiry_in_a_single_flight(
        self, app: FastAPI, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user = await register(client)
        clock = FakeMonotonic()
        auth = AuthapiAuth(
            "http://testserver/token",
            username=user["email"],
            password=PASSWORD,
            refresh_margin=30,
            clock=clock,
        )
        async with client_for(app, auth) as http:
            assert (await http.get("/whoami")).status_code == 200
            first = auth.access_token
            clock.now += 300 - 31  # still valid, not yet within the margin
            assert (await http.get("/whoami")).status_code == 200
            assert auth.access_token == first
            clock.now += 2  # within 30 s of expiry
            responses = await asyncio.gather(*(http.get("/whoami") for _ in range(10)))
        assert {r.status_code for r in responses} == {200}
        assert auth.access_token != first
        assert await count(context, "refresh") == 1
        assert await count(context, "login_succeeded") == 1

    async def test_a_401_renews_the_token_once(
        self, app: FastAPI, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user = await register(client)
        auth = AuthapiAuth("http://testserver/token", username=user["email"], password=PASSWORD)
        async with client_for(app, auth) as http:
            assert (await http.get("/users/me")).status_code == 200
            spoil_access_token(auth)
            response = await http.get("/users/me")
        assert response.status_code == 200
        assert await count(context, "refresh") == 1
        assert await count(context, "login_succeeded") == 1

    async def test_logs_in_again_when_the_session_has_ended(
        self, app: FastAPI, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user = await register(client)
        auth = AuthapiAuth("http://testserver/token", username=user["email"], password=PASSWORD)
        async with client_for(app, auth) as http:
            assert (await http.delete("/sessions")).status_code == 204  # log out everywhere
            spoil_access_token(auth)
            response = await http.get("/users/me")
        assert response.status_code == 200
        assert await count(context, "login_succeeded") == 2

    async def test_retries_a_401_only_once(self) -> None:
        calls = {"token": 0, "resource": 0}

        def handler(request: httpx.Request) -> httpx.Response:
            if request.url.path == "/token":
                calls["token"] += 1
                body = {"access_token": "at", "refresh_token": "rt", "expires_in": 300}
                return httpx.Response(200, json=body)
            calls["resource"] += 1
            return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})

        auth = AuthapiAuth("http://auth/token", username="u@example.com", password=PASSWORD)
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler), auth=auth) as http:
            response = await http.get("http://api/thing")
        assert response.status_code == 401
        assert calls == {"token": 2, "resource": 2}  # login, request, refresh, retry

    async def test_wrong_password_raises(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        user = await register(client)
        auth = AuthapiAuth("http://testserver/token", username=user["email"], password="wrong!!")
        async with client_for(app, auth) as http:
            with pytest.raises(AuthapiError, match="invalid_grant"):
                await http.get("/whoami")


class TestSyncClient:
    def test_threads_share_one_login_against_a_real_server(
        self, database_url: str, data_dir: Path, tmp_path: Path
    ) -> None:
        with serving(database_url, data_dir, tmp_path) as server:
            with httpx.Client(base_url=server.base_url) as plain:
                email = f"sync-{tmp_path.name}@example.com"
                assert (
                    plain.post("/users", json={"email": email, "password": PASSWORD}).status_code
                    == 201
                )
            auth = AuthapiAuth(f"{server.base_url}/token", username=email, password=PASSWORD)
            with httpx.Client(base_url=server.base_url, auth=auth) as http:
                with ThreadPoolExecutor(max_workers=8) as pool:
                    responses = list(pool.map(lambda _: http.get("/whoami"), range(16)))
                assert {r.status_code for r in responses} == {200}
                sessions = http.get("/sessions").json()
        assert len(sessions) == 1  # one login for all threads
