"""The client address (client_address.py): X-Forwarded-For believed only from trusted
proxies, and only right of them; seen here through the per-address rate limit and the
sessions it records."""

from __future__ import annotations

import httpx
import pytest

from tests.support.factories import bearer, password_form, register
from tests.support.ratelimit import assert_rate_limited


class TestClientAddress:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"rate_limit_token": "2/minute"}

    async def test_forwarded_for_is_ignored_from_untrusted_peers(
        self, client: httpx.AsyncClient
    ) -> None:
        for n in range(2):
            await client.post(
                "/token",
                data=password_form("a@example.com"),
                headers={"X-Forwarded-For": f"10.0.0.{n}"},
            )
        response = await client.post(
            "/token", data=password_form("a@example.com"), headers={"X-Forwarded-For": "10.9.9.9"}
        )
        assert_rate_limited(response)

    @pytest.mark.parametrize(
        "settings_overrides", [{"rate_limit_token": "2/minute", "trusted_proxies": ["127.0.0.0/8"]}]
    )
    async def test_spoofed_hops_left_of_the_proxy_are_ignored(
        self, client: httpx.AsyncClient
    ) -> None:
        # The proxy appends the real peer; what the client wrote sits to its left.
        for n in range(2):
            await client.post(
                "/token",
                data=password_form("a@example.com"),
                headers={"X-Forwarded-For": f"1.1.1.{n}, 198.51.100.1"},
            )
        response = await client.post(
            "/token",
            data=password_form("a@example.com"),
            headers={"X-Forwarded-For": "1.1.1.99, 198.51.100.1"},
        )
        assert_rate_limited(response)

    @pytest.mark.parametrize("settings_overrides", [{"trusted_proxies": ["127.0.0.1"]}])
    async def test_session_records_the_forwarded_address(self, client: httpx.AsyncClient) -> None:
        user = await register(client)
        response = await client.post(
            "/token", data=password_form(user["email"]), headers={"X-Forwarded-For": "2001:db8::1"}
        )
        sessions = (await client.get("/sessions", headers=bearer(response.json()))).json()
        assert sessions[0]["ip"] == "2001:db8::1"
