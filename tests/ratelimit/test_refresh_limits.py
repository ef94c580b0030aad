"""Refreshes are limited per session, plus a loose cap per client address: they never
use up the address's login budget, and one busy session cannot starve the others of
its address."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable

import httpx
import pytest
from sqlalchemy import select

from authapi.audit.models import AuditEvent
from authapi.context import AppContext
from tests.support.factories import password_form, register
from tests.support.ratelimit import assert_rate_limited
from tests.support.settings import CHEAP_HASHES

OFFICE = "203.0.113.80"

Refresh = Callable[[httpx.AsyncClient, str], Awaitable[httpx.Response]]
# The two ways to refresh, both from the office's address.
REFRESHES: dict[str, Refresh] = {
    "token endpoint": lambda client, token: client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": token},
        headers={"X-Forwarded-For": OFFICE},
    ),
    "refresh endpoint": lambda client, token: client.post(
        "/refresh", json={"refresh_token": token}, headers={"X-Forwarded-For": OFFICE}
    ),
}


@pytest.fixture(params=list(REFRESHES))
def refresh(request: pytest.FixtureRequest) -> Refresh:
    return REFRESHES[request.param]


async def sessions_of_one_user(client: httpx.AsyncClient, count: int) -> list[str]:
    """`count` refresh tokens of as many sessions, each logged in from its own address
    (so that the logins themselves stay within every login limit)."""
    user = await register(client)
    tokens = []
    for n in range(count):
        response = await client.post(
            "/token",
            data=password_form(user["email"]),
            headers={"X-Forwarded-For": f"192.0.2.{n + 1}"},
        )
        assert response.status_code == 200, response.text
        tokens.append(response.json()["refresh_token"])
    return tokens


def forged_from(token: str) -> str:
    """A token naming the same session and generation, with a wrong MAC."""
    raw = bytearray(base64.urlsafe_b64decode(token[3:] + "="))
    raw[-1] ^= 1
    return "rt_" + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


class TestOneAddressManySessions:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        # The default login limit of 30/minute per address, and the default refresh limits.
        return {
            "trusted_proxies": ["127.0.0.1"],
            "rate_limit_login_account": "1000/hour",
            **CHEAP_HASHES,
        }

    async def test_refreshes_of_40_sessions_all_succeed(
        self, client: httpx.AsyncClient, refresh: Refresh
    ) -> None:
        tokens = await sessions_of_one_user(client, 40)
        for token in tokens:
            response = await refresh(client, token)
            assert response.status_code == 200, response.text

    async def test_refreshes_leave_the_login_limit_alone(self, client: httpx.AsyncClient) -> None:
        user = await register(client)
        tokens = await sessions_of_one_user(client, 31)
        for token in tokens:
            await REFRESHES["token endpoint"](client, token)
        login = await client.post(
            "/token", data=password_form(user["email"]), headers={"X-Forwarded-For": OFFICE}
        )
        assert login.status_code == 200, login.text


class TestPerSession:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"trusted_proxies": ["127.0.0.1"], "rate_limit_refresh": "3/minute", **CHEAP_HASHES}

    async def test_a_session_over_its_limit_does_not_stop_another(
        self, client: httpx.AsyncClient, context: AppContext, refresh: Refresh
    ) -> None:
        busy, quiet = await sessions_of_one_user(client, 2)
        for _ in range(3):
            response = await refresh(client, busy)
            assert response.status_code == 200, response.text
            busy = response.json()["refresh_token"]
        assert_rate_limited(await refresh(client, busy))
        assert_rate_limited(await refresh(client, busy))
        assert (await refresh(client, quiet)).status_code == 200
        async with context.sessionmaker() as db:
            refusals = list(
                await db.scalars(select(AuditEvent).where(AuditEvent.event == "rate_limited"))
            )
        assert [event.detail for event in refusals] == ["refresh_session"]  # once a minute

    async def test_forged_tokens_count_against_no_session(
        self, client: httpx.AsyncClient, refresh: Refresh
    ) -> None:
        (token,) = await sessions_of_one_user(client, 1)
        for _ in range(5):
            response = await refresh(client, forged_from(token))
            assert response.json()["error"] == "invalid_grant"
        assert (await refresh(client, token)).status_code == 200
