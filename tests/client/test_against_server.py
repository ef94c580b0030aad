"""authapi_client.AuthapiAuth against the real app: in-process for httpx.AsyncClient,
as a real server for httpx.Client. What needs no server is tested in clients/python/tests."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from authapi.audit.models import AuditEvent
from authapi.context import AppContext
from authapi_client import AuthapiAuth, AuthapiError, AuthapiMfaRequired, AuthapiUnavailable
from tests.mfa.helpers import enable_totp
from tests.support.clock import FakeClock
from tests.support.factories import PASSWORD, login, register
from tests.support.redis import ThrowawayRedis, throwaway_redis
from tests.support.servers import serving


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


def kept_refresh_token(auth: AuthapiAuth) -> str:
    assert auth._tokens is not None, "the client dropped its session"
    return auth._tokens.refresh


def client_for(
    app: FastAPI, auth: AuthapiAuth, grants: list[str] | None = None
) -> httpx.AsyncClient:
    """A client of the in-process app. `grants` receives the grant_type of every
    token request the auth sends, in order."""

    async def record_grant(request: httpx.Request) -> None:
        if grants is not None and request.url.path == "/token":
            grants.append(dict(httpx.QueryParams(request.content.decode()))["grant_type"])

    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        auth=auth,
        event_hooks={"request": [record_grant]},
    )


MFA_GRANT = "urn:authapi:params:oauth:grant-type:mfa"


def auth_for(user: dict[str, str], clock: FakeMonotonic) -> AuthapiAuth:
    return AuthapiAuth(
        "http://testserver/token", username=user["email"], password=PASSWORD, clock=clock
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
        grants: list[str] = []
        async with client_for(app, auth, grants) as http:
            assert (await http.delete("/sessions")).status_code == 204  # log out everywhere
            spoil_access_token(auth)
            response = await http.get("/users/me")
        assert response.status_code == 200
        assert grants == ["password", "refresh_token", "password"]  # invalid_grant, then login
        assert await count(context, "login_succeeded") == 2

    async def test_wrong_password_raises(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        user = await register(client)
        auth = AuthapiAuth("http://testserver/token", username=user["email"], password="wrong!!")
        async with client_for(app, auth) as http:
            with pytest.raises(AuthapiError, match="invalid_grant"):
                await http.get("/whoami")


class TestSecondFactor:
    async def test_the_otp_callback_completes_the_login(
        self, app: FastAPI, client: httpx.AsyncClient, context: AppContext, clock: FakeClock
    ) -> None:
        user = await register(client)
        totp = await enable_totp(client, await login(client, user["email"]), clock)
        asked: list[str] = []

        def otp() -> str:
            asked.append(code := totp.code(clock))
            return code

        auth = AuthapiAuth(
            "http://testserver/token", username=user["email"], password=PASSWORD, otp=otp
        )
        grants: list[str] = []
        logins = await count(context, "login_succeeded")  # the enrolment's
        async with client_for(app, auth, grants) as http:
            responses = await asyncio.gather(*(http.get("/whoami") for _ in range(5)))
        assert {r.status_code for r in responses} == {200}
        assert set(responses[0].json()["amr"]) == {"pwd", "otp", "mfa"}
        assert grants == ["password", MFA_GRANT]
        assert len(asked) == 1
        assert await count(context, "login_succeeded") == logins + 1

    async def test_a_recovery_code_works_once(
        self, app: FastAPI, client: httpx.AsyncClient, clock: FakeClock
    ) -> None:
        user = await register(client)
        totp = await enable_totp(client, await login(client, user["email"]), clock)
        email, code = user["email"], totp.recovery_codes[0]
        for works in (True, False):
            auth = AuthapiAuth(
                "http://testserver/token", username=email, password=PASSWORD, otp=lambda: code
            )
            async with client_for(app, auth) as http:
                if works:
                    assert (await http.get("/whoami")).status_code == 200
                    continue
                with pytest.raises(AuthapiError, match="invalid_grant"):
                    await http.get("/whoami")

    async def test_without_a_callback_it_raises_with_the_methods(
        self, app: FastAPI, client: httpx.AsyncClient, context: AppContext, clock: FakeClock
    ) -> None:
        user = await register(client)
        await enable_totp(client, await login(client, user["email"]), clock)
        auth = AuthapiAuth("http://testserver/token", username=user["email"], password=PASSWORD)
        async with client_for(app, auth) as http:
            with pytest.raises(AuthapiMfaRequired) as raised:
                await http.get("/whoami")
        assert raised.value.mfa_methods == ["totp", "recovery_code"]
        assert auth.access_token is None


@pytest.mark.parametrize("settings_overrides", [{"access_token_ttl": 10}])
class TestShortAccessTokenLifetime:
    async def test_concurrent_requests_refresh_at_most_once(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        # A TTL below the default 30 s margin: the margin shrinks to a part of the TTL.
        user = await register(client)
        clock = FakeMonotonic()
        grants: list[str] = []
        async with client_for(app, auth_for(user, clock), grants) as http:
            first = await asyncio.gather(*(http.get("/whoami") for _ in range(20)))
            assert grants == ["password"]
            clock.now += 8  # 2 s before expiry: time to refresh
            second = await asyncio.gather(*(http.get("/whoami") for _ in range(20)))
        assert {r.status_code for r in first + second} == {200}
        assert grants == ["password", "refresh_token"]


# One refresh a minute (a login on top, where refreshes count against the login budget).
@pytest.mark.parametrize(
    "settings_overrides", [{"rate_limit_token": "2/minute", "rate_limit_refresh": "1/minute"}]
)
class TestRateLimitedRefresh:
    async def test_keeps_the_session_and_the_valid_access_token(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        user = await register(client)
        clock = FakeMonotonic()
        auth = auth_for(user, clock)
        grants: list[str] = []
        async with client_for(app, auth, grants) as http:
            assert (await http.get("/whoami")).status_code == 200
            clock.now += 300 - 10  # within the margin: the minute's one refresh
            assert (await http.get("/whoami")).status_code == 200
            refresh_token = kept_refresh_token(auth)
            assert grants == ["password", "refresh_token"]

            clock.now += 300 - 10  # within the margin again: refresh, answered 429
            response = await http.get("/whoami")
            assert response.status_code == 200  # the access token was still valid
            assert grants == ["password", "refresh_token", "refresh_token"]
            assert kept_refresh_token(auth) == refresh_token

            # A 401 now needs a new token, but Retry-After has not passed: a clear
            # error at once, and the token endpoint is not asked again.
            access = auth.access_token
            spoil_access_token(auth)
            with pytest.raises(AuthapiUnavailable, match="retry in") as raised:
                await http.get("/whoami")
            assert 0 < raised.value.retry_after <= 60
            assert grants == ["password", "refresh_token", "refresh_token"]
            assert kept_refresh_token(auth) == refresh_token
        # The session lives on, unrotated, so the refresh token kept is its current one.
        sessions = await client.get("/sessions", headers={"Authorization": f"Bearer {access}"})
        assert sessions.status_code == 200
        assert len(sessions.json()) == 1


@pytest.fixture
def redis_storage() -> Iterator[ThrowawayRedis]:
    with throwaway_redis() as redis:
        yield redis


class TestRefreshDuringAnOutage:
    @pytest.fixture
    def settings_overrides(self, redis_storage: ThrowawayRedis) -> dict[str, object]:
        # The rate limits' storage: while it is down, /token answers 503 (Retry-After: 1).
        return {"rate_limit_storage": redis_storage.url}

    async def test_a_503_keeps_the_session_for_after_the_outage(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        context: AppContext,
        redis_storage: ThrowawayRedis,
    ) -> None:
        user = await register(client)
        clock = FakeMonotonic()
        auth = auth_for(user, clock)
        grants: list[str] = []
        async with client_for(app, auth, grants) as http:
            assert (await http.get("/whoami")).status_code == 200
            refresh_token = kept_refresh_token(auth)
            redis_storage.stop()
            clock.now += 301  # the access token has expired
            with pytest.raises(AuthapiUnavailable) as raised:
                await http.get("/whoami")
            assert raised.value.retry_after == 1
            assert raised.value.response is not None
            assert raised.value.response.status_code == 503
            assert grants == ["password", "refresh_token"]
            assert kept_refresh_token(auth) == refresh_token

            redis_storage.start()
            clock.now += 1  # Retry-After has passed
            response = await http.get("/whoami")
        assert response.status_code == 200
        assert grants == ["password", "refresh_token", "refresh_token"]  # no second login
        assert await count(context, "login_succeeded") == 1
        assert await count(context, "refresh") == 1


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
