"""AuthapiAuth against an in-process stand-in for authapi (fake_authapi.py): login,
refresh before expiry, a 401, a session that has ended, and a token endpoint that asks
to wait. Async tests run their own event loop, so that only pytest and httpx are needed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from fake_authapi import (
    CODE,
    EMAIL,
    ME_URL,
    MFA_GRANT,
    PASSWORD,
    TOKEN_URL,
    FakeAuthapi,
    FakeMonotonic,
    Refusal,
)

import authapi_client
from authapi_client import AuthapiAuth, AuthapiError, AuthapiMfaRequired, AuthapiUnavailable


def auth_for(
    clock: FakeMonotonic | None = None, *, scope: str | None = None, refresh_margin: float = 30
) -> AuthapiAuth:
    return AuthapiAuth(
        TOKEN_URL,
        username=EMAIL,
        password=PASSWORD,
        scope=scope,
        refresh_margin=refresh_margin,
        clock=clock or time.monotonic,
    )


def run(
    server: FakeAuthapi, auth: AuthapiAuth, steps: Callable[[httpx.AsyncClient], Awaitable[None]]
) -> None:
    async def scenario() -> None:
        async with httpx.AsyncClient(transport=server.transport, auth=auth) as http:
            await steps(http)

    asyncio.run(scenario())


def test_the_public_names() -> None:
    assert sorted(authapi_client.__all__) == [
        "AuthapiAuth",
        "AuthapiError",
        "AuthapiMfaRequired",
        "AuthapiUnavailable",
        "__version__",
    ]
    assert issubclass(AuthapiUnavailable, AuthapiError)
    assert issubclass(AuthapiMfaRequired, AuthapiError)


class TestLogin:
    def test_concurrent_requests_share_one_login(self) -> None:
        server = FakeAuthapi()

        async def steps(http: httpx.AsyncClient) -> None:
            responses = await asyncio.gather(*(http.get(ME_URL) for _ in range(20)))
            assert {r.status_code for r in responses} == {200}

        run(server, auth_for(), steps)
        assert server.grants == ["password"]

    def test_threads_share_one_login(self) -> None:
        server = FakeAuthapi()
        with httpx.Client(transport=server.transport, auth=auth_for()) as http:
            with ThreadPoolExecutor(max_workers=8) as pool:
                responses = list(pool.map(lambda _: http.get(ME_URL), range(16)))
        assert {r.status_code for r in responses} == {200}
        assert server.grants == ["password"]

    def test_asks_for_the_scope_given(self) -> None:
        server = FakeAuthapi()
        clock = FakeMonotonic()

        async def steps(http: httpx.AsyncClient) -> None:
            assert (await http.get(ME_URL)).status_code == 200
            clock.now += 290  # within the margin: refresh
            assert (await http.get(ME_URL)).status_code == 200

        run(server, auth_for(clock, scope="profile"), steps)
        assert server.grants == ["password", "refresh_token"]
        assert server.scopes == ["profile", "profile"]

    def test_wrong_password_raises(self) -> None:
        server = FakeAuthapi()
        auth = AuthapiAuth(TOKEN_URL, username=EMAIL, password="wrong!!")  # noqa: S106
        with httpx.Client(transport=server.transport, auth=auth) as http:
            with pytest.raises(AuthapiError, match="invalid_grant") as raised:
                http.get(ME_URL)
        assert raised.value.response is not None
        assert raised.value.response.status_code == 400
        assert auth.access_token is None

    def test_a_rate_limited_login_waits_for_retry_after(self) -> None:
        server = FakeAuthapi()
        clock = FakeMonotonic()
        auth = auth_for(clock)
        server.refuse_next_token_request(Refusal(429, {"Retry-After": "30"}))
        with httpx.Client(transport=server.transport, auth=auth) as http:
            with pytest.raises(AuthapiUnavailable, match="login postponed") as first:
                http.get(ME_URL)
            assert first.value.retry_after == 30
            clock.now += 29  # not yet: refused at once, the endpoint is not asked
            with pytest.raises(AuthapiUnavailable):
                http.get(ME_URL)
            assert server.grants == ["password"]
            clock.now += 1
            assert http.get(ME_URL).status_code == 200
        assert server.grants == ["password", "password"]


class TestSecondFactor:
    def test_the_otp_callback_gives_the_code_of_the_mfa_grant(self) -> None:
        server = FakeAuthapi(mfa_methods=["totp", "recovery_code"])
        asked: list[None] = []

        def otp() -> str:
            asked.append(None)
            return CODE

        auth = AuthapiAuth(TOKEN_URL, username=EMAIL, password=PASSWORD, otp=otp)

        async def steps(http: httpx.AsyncClient) -> None:
            responses = await asyncio.gather(*(http.get(ME_URL) for _ in range(5)))
            assert {r.status_code for r in responses} == {200}

        run(server, auth, steps)
        assert server.grants == ["password", MFA_GRANT]  # one login for all five
        assert len(asked) == 1

    def test_without_a_callback_the_login_raises_mfa_required(self) -> None:
        server = FakeAuthapi(mfa_methods=["totp"])
        auth = AuthapiAuth(TOKEN_URL, username=EMAIL, password=PASSWORD)
        with httpx.Client(transport=server.transport, auth=auth) as http:
            with pytest.raises(AuthapiMfaRequired, match="pass `otp`") as raised:
                http.get(ME_URL)
        assert raised.value.mfa_methods == ["totp"]
        assert server.grants == ["password"]
        assert auth.access_token is None

    def test_a_passkey_only_account_raises_without_asking_for_a_code(self) -> None:
        server = FakeAuthapi(mfa_methods=["passkey"])
        auth = AuthapiAuth(TOKEN_URL, username=EMAIL, password=PASSWORD, otp=lambda: CODE)
        with httpx.Client(transport=server.transport, auth=auth) as http:
            with pytest.raises(AuthapiMfaRequired) as raised:
                http.get(ME_URL)
        assert raised.value.mfa_methods == ["passkey"]
        assert server.grants == ["password"]

    def test_a_wrong_code_raises_the_refusal(self) -> None:
        server = FakeAuthapi(mfa_methods=["totp"])
        auth = AuthapiAuth(TOKEN_URL, username=EMAIL, password=PASSWORD, otp=lambda: "000000")
        with httpx.Client(transport=server.transport, auth=auth) as http:
            with pytest.raises(AuthapiError, match="invalid_grant") as raised:
                http.get(ME_URL)
        assert not isinstance(raised.value, AuthapiMfaRequired)
        assert server.grants == ["password", MFA_GRANT]
        assert auth.access_token is None

    def test_a_rate_limited_code_waits_for_retry_after(self) -> None:
        server = FakeAuthapi(mfa_methods=["totp"])
        clock = FakeMonotonic()
        auth = AuthapiAuth(
            TOKEN_URL, username=EMAIL, password=PASSWORD, otp=lambda: CODE, clock=clock
        )
        server.refuse_next_token_request(
            Refusal(429, {"Retry-After": "60"}, {"error": "too_many_requests"}, MFA_GRANT)
        )
        with httpx.Client(transport=server.transport, auth=auth) as http:
            with pytest.raises(AuthapiUnavailable, match="login postponed"):
                http.get(ME_URL)
            clock.now += 59
            with pytest.raises(AuthapiUnavailable):
                http.get(ME_URL)  # refused at once, the endpoint is not asked
            assert server.grants == ["password", MFA_GRANT]
            clock.now += 1
            assert http.get(ME_URL).status_code == 200
        assert server.grants == ["password", MFA_GRANT, "password", MFA_GRANT]


class TestRefresh:
    def test_shortly_before_expiry_in_a_single_flight(self) -> None:
        server = FakeAuthapi()
        clock = FakeMonotonic()
        auth = auth_for(clock, refresh_margin=30)

        async def steps(http: httpx.AsyncClient) -> None:
            assert (await http.get(ME_URL)).status_code == 200
            first = auth.access_token
            clock.now += 300 - 31  # still valid, not yet within the margin
            assert (await http.get(ME_URL)).status_code == 200
            assert auth.access_token == first
            clock.now += 2  # within 30 s of expiry
            responses = await asyncio.gather(*(http.get(ME_URL) for _ in range(10)))
            assert {r.status_code for r in responses} == {200}
            assert auth.access_token != first

        run(server, auth, steps)
        assert server.grants == ["password", "refresh_token"]

    @pytest.mark.parametrize(
        ("elapsed", "grants"), [(7, ["password"]), (8, ["password", "refresh_token"])]
    )
    def test_the_margin_is_at_most_a_quarter_of_the_lifetime(
        self, elapsed: float, grants: list[str]
    ) -> None:
        # 10 s tokens and the default 30 s margin: refresh 2.5 s before expiry, not before
        # every request.
        server = FakeAuthapi(expires_in=10)
        clock = FakeMonotonic()
        with httpx.Client(transport=server.transport, auth=auth_for(clock)) as http:
            assert http.get(ME_URL).status_code == 200
            clock.now += elapsed
            assert http.get(ME_URL).status_code == 200
        assert server.grants == grants

    def test_a_401_renews_the_token_once(self) -> None:
        server = FakeAuthapi()
        with httpx.Client(transport=server.transport, auth=auth_for()) as http:
            assert http.get(ME_URL).status_code == 200
            server.revoke_access_tokens()
            assert http.get(ME_URL).status_code == 200
        assert server.grants == ["password", "refresh_token"]

    def test_retries_a_401_only_once(self) -> None:
        calls = {"token": 0, "resource": 0}

        def handler(request: httpx.Request) -> httpx.Response:
            if request.url.path == "/token":
                calls["token"] += 1
                body = {"access_token": "at", "refresh_token": "rt", "expires_in": 300}
                return httpx.Response(200, json=body)
            calls["resource"] += 1
            return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})

        auth = AuthapiAuth("http://auth/token", username="u@example.com", password=PASSWORD)

        async def scenario() -> httpx.Response:
            async with httpx.AsyncClient(transport=httpx.MockTransport(handler), auth=auth) as http:
                return await http.get("http://api/thing")

        response = asyncio.run(scenario())
        assert response.status_code == 401
        assert calls == {"token": 2, "resource": 2}  # login, request, refresh, retry

    def test_logs_in_again_when_the_session_has_ended(self) -> None:
        server = FakeAuthapi()
        with httpx.Client(transport=server.transport, auth=auth_for()) as http:
            assert http.get(ME_URL).status_code == 200
            server.end_sessions()  # logged out everywhere
            server.revoke_access_tokens()
            assert http.get(ME_URL).status_code == 200
        assert server.grants == ["password", "refresh_token", "password"]


class TestTokenEndpointAsksToWait:
    def test_a_429_keeps_the_session_and_the_valid_access_token(self) -> None:
        server = FakeAuthapi()
        clock = FakeMonotonic()
        auth = auth_for(clock)
        with httpx.Client(transport=server.transport, auth=auth) as http:
            assert http.get(ME_URL).status_code == 200
            access = auth.access_token
            clock.now += 290  # within the margin: refresh, answered 429
            server.refuse_next_token_request(Refusal(429, {"Retry-After": "60"}))
            assert http.get(ME_URL).status_code == 200  # the access token still works
            assert auth.access_token == access
            assert http.get(ME_URL).status_code == 200  # and Retry-After has not passed
            assert server.grants == ["password", "refresh_token"]

            # A 401 now needs a new token, but Retry-After has not passed: a clear error
            # at once, and the token endpoint is not asked again.
            server.revoke_access_tokens()
            with pytest.raises(AuthapiUnavailable, match="retry in") as raised:
                http.get(ME_URL)
            assert 0 < raised.value.retry_after <= 60
            assert server.grants == ["password", "refresh_token"]

            clock.now += 60  # Retry-After has passed: the same session is refreshed
            assert http.get(ME_URL).status_code == 200
        assert server.grants == ["password", "refresh_token", "refresh_token"]

    def test_a_503_without_a_valid_token_raises_with_the_response(self) -> None:
        server = FakeAuthapi()
        clock = FakeMonotonic()
        with httpx.Client(transport=server.transport, auth=auth_for(clock)) as http:
            assert http.get(ME_URL).status_code == 200
            clock.now += 301  # the access token has expired
            server.refuse_next_token_request(Refusal(503, {"Retry-After": "1"}))
            with pytest.raises(AuthapiUnavailable) as raised:
                http.get(ME_URL)
            assert raised.value.retry_after == 1
            assert raised.value.response is not None
            assert raised.value.response.status_code == 503
            clock.now += 1
            assert http.get(ME_URL).status_code == 200
        assert server.grants == ["password", "refresh_token", "refresh_token"]  # no login

    def test_retry_after_as_an_http_date(self) -> None:
        server = FakeAuthapi()
        clock = FakeMonotonic()
        when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
        with httpx.Client(transport=server.transport, auth=auth_for(clock)) as http:
            assert http.get(ME_URL).status_code == 200
            clock.now += 301
            server.refuse_next_token_request(Refusal(503, {"Retry-After": when}))
            with pytest.raises(AuthapiUnavailable) as raised:
                http.get(ME_URL)
        # An HTTP date has whole seconds, and the test took some time of its own.
        assert 100 < raised.value.retry_after <= 120

    def test_another_refusal_raises_and_keeps_the_session(self) -> None:
        # A proxy's 502 says nothing about the session: no new login.
        server = FakeAuthapi()
        clock = FakeMonotonic()
        with httpx.Client(transport=server.transport, auth=auth_for(clock)) as http:
            assert http.get(ME_URL).status_code == 200
            clock.now += 301
            server.refuse_next_token_request(Refusal(502, body={"error": "bad_gateway"}))
            with pytest.raises(AuthapiError, match=r"refresh refused \(502\)") as raised:
                http.get(ME_URL)
            assert not isinstance(raised.value, AuthapiUnavailable)
            assert http.get(ME_URL).status_code == 200
        assert server.grants == ["password", "refresh_token", "refresh_token"]
