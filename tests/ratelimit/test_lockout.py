"""Failed logins cannot lock an account's owner out: they are counted per (account,
client address), or per (account, known device) for a client with a valid device
cookie, below a looser cap per account that does refuse everyone."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from authapi.audit.models import AuditEvent
from authapi.context import AppContext
from authapi.ratelimit.dependencies import DEVICE_COOKIE_MAX_AGE, SECURE_DEVICE_COOKIE
from tests.support.factories import password_form, register
from tests.support.ratelimit import assert_rate_limited
from tests.support.settings import CHEAP_HASHES

ATTACKER = "203.0.113.66"
OWNER = "198.51.100.7"


async def attempt(
    client: httpx.AsyncClient,
    email: str,
    password: str,
    *,
    address: str,
    device_cookie: str | None = None,
    cookie_name: str = SECURE_DEVICE_COOKIE,
) -> httpx.Response:
    """A password grant from `address`, with only the device cookie given (if any)."""
    client.cookies.clear()  # attacker and owner share no cookie jar
    headers = {"X-Forwarded-For": address}
    if device_cookie is not None:
        headers["Cookie"] = f"{cookie_name}={device_cookie}"
    return await client.post("/token", data=password_form(email, password), headers=headers)


async def fail(client: httpx.AsyncClient, email: str, times: int, **where: Any) -> None:
    for _ in range(times):
        response = await attempt(client, email, "wrong guess", **where)
        assert response.status_code == 400, response.text


def with_another_mac(cookie: str) -> str:
    """The cookie with one character of its MAC changed (not the last, whose low bits
    are padding)."""
    changed = "A" if cookie[-5] != "A" else "B"
    return cookie[:-5] + changed + cookie[-4:]


async def device_cookie_of(client: httpx.AsyncClient, email: str, address: str) -> str:
    response = await attempt(client, email, "correct horse battery", address=address)
    assert response.status_code == 200, response.text
    return response.cookies[SECURE_DEVICE_COOKIE]


class TestAttackerElsewhere:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"trusted_proxies": ["127.0.0.1"], **CHEAP_HASHES}  # the default limits

    async def test_owner_on_another_address_logs_in(self, client: httpx.AsyncClient) -> None:
        user = await register(client)
        await fail(client, user["email"], 10, address=ATTACKER)
        assert_rate_limited(await attempt(client, user["email"], "guess", address=ATTACKER), 900)
        response = await attempt(client, user["email"], "correct horse battery", address=OWNER)
        assert response.status_code == 200, response.text

    async def test_owner_on_the_same_address_logs_in_with_a_device_cookie(
        self, client: httpx.AsyncClient
    ) -> None:
        user = await register(client)
        cookie = await device_cookie_of(client, user["email"], ATTACKER)
        await fail(client, user["email"], 9, address=ATTACKER)  # 10 with the login above
        assert_rate_limited(await attempt(client, user["email"], "guess", address=ATTACKER), 900)
        response = await attempt(
            client, user["email"], "correct horse battery", address=ATTACKER, device_cookie=cookie
        )
        assert response.status_code == 200, response.text

    async def test_a_known_device_has_the_same_limit(self, client: httpx.AsyncClient) -> None:
        user = await register(client)
        cookie = await device_cookie_of(client, user["email"], OWNER)
        await fail(client, user["email"], 10, address=OWNER, device_cookie=cookie)
        response = await attempt(
            client, user["email"], "correct horse battery", address=OWNER, device_cookie=cookie
        )
        assert_rate_limited(response, 900)
        # The device's bucket is its own: the address's is untouched.
        response = await attempt(client, user["email"], "correct horse battery", address=OWNER)
        assert response.status_code == 200, response.text

    @pytest.mark.parametrize(
        "forge",
        [
            pytest.param(lambda genuine, _: "dv1." + "A" * 86, id="made up"),
            pytest.param(lambda genuine, _: with_another_mac(genuine), id="bad MAC"),
            pytest.param(lambda _, other: other, id="another account's"),
            pytest.param(lambda genuine, _: genuine + "x", id="malformed"),
        ],
    )
    async def test_a_forged_or_foreign_device_cookie_gives_no_bypass(
        self, client: httpx.AsyncClient, forge: Any
    ) -> None:
        victim = await register(client)
        attacker = await register(client)
        genuine = await device_cookie_of(client, victim["email"], OWNER)
        own = await device_cookie_of(client, attacker["email"], ATTACKER)
        await fail(client, victim["email"], 10, address=ATTACKER)
        response = await attempt(
            client,
            victim["email"],
            "correct horse battery",
            address=ATTACKER,
            device_cookie=forge(genuine, own),
        )
        assert_rate_limited(response, 900)

    async def test_ipv6_clients_are_counted_by_their_64(self, client: httpx.AsyncClient) -> None:
        user = await register(client)
        for n in range(10):
            await fail(client, user["email"], 1, address=f"2001:db8:1:2::{n + 1:x}")
        refused = await attempt(client, user["email"], "guess", address="2001:db8:1:2:ffff::9")
        assert_rate_limited(refused, 900)
        response = await attempt(
            client, user["email"], "correct horse battery", address="2001:db8:1:3::1"
        )
        assert response.status_code == 200, response.text


class TestAccountCap:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {
            "trusted_proxies": ["127.0.0.1"],
            "rate_limit_login_account": "5/hour",
            **CHEAP_HASHES,
        }

    async def test_past_the_cap_everyone_is_refused(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user = await register(client)
        cookie = await device_cookie_of(client, user["email"], OWNER)
        for n in range(4):  # 5 with the owner's login: one failure from each of 4 addresses
            await fail(client, user["email"], 1, address=f"192.0.2.{n + 1}")
        assert_rate_limited(
            await attempt(client, user["email"], "correct horse battery", address=OWNER), 3600
        )
        response = await attempt(
            client, user["email"], "correct horse battery", address=OWNER, device_cookie=cookie
        )
        assert_rate_limited(response, 3600)
        async with context.sessionmaker() as db:
            refusals = await db.scalars(
                select(AuditEvent.detail).where(AuditEvent.event == "rate_limited")
            )
            assert list(refusals) == ["login_account"]  # once a minute per limit and account

    @pytest.mark.parametrize(
        "settings_overrides",
        [
            {
                "trusted_proxies": ["127.0.0.1"],
                "rate_limit_login_failures": "2/15 minutes",
                "rate_limit_login_account": "5/hour",
                **CHEAP_HASHES,
            }
        ],
    )
    async def test_refused_attempts_do_not_use_up_the_cap(self, client: httpx.AsyncClient) -> None:
        user = await register(client)
        await fail(client, user["email"], 2, address=ATTACKER)
        for _ in range(5):  # refused by the address's bucket: the account's cap is not hit
            assert_rate_limited(
                await attempt(client, user["email"], "guess", address=ATTACKER), 900
            )
        response = await attempt(client, user["email"], "correct horse battery", address=OWNER)
        assert response.status_code == 200, response.text


class TestDeviceCookie:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return CHEAP_HASHES

    async def test_every_password_grant_sets_it(self, client: httpx.AsyncClient) -> None:
        user = await register(client)
        response = await client.post("/token", data=password_form(user["email"]))
        header = response.headers["set-cookie"]
        name, _, rest = header.partition("=")
        assert name == SECURE_DEVICE_COOKIE
        attributes = {part.strip().split("=")[0].lower() for part in rest.split(";")[1:]}
        assert {"httponly", "secure", "path", "max-age"} <= attributes
        assert "samesite=strict" in header.lower()
        assert f"max-age={DEVICE_COOKIE_MAX_AGE}" in header.lower()
        assert user["email"].split("@")[0] not in header

    async def test_a_known_device_keeps_its_id(self, client: httpx.AsyncClient) -> None:
        user = await register(client)
        first = await attempt(client, user["email"], "correct horse battery", address="x")
        cookie = first.cookies[SECURE_DEVICE_COOKIE]
        again = await attempt(
            client, user["email"], "correct horse battery", address="x", device_cookie=cookie
        )
        assert again.cookies[SECURE_DEVICE_COOKIE] == cookie
        other = await attempt(client, user["email"], "correct horse battery", address="x")
        assert other.cookies[SECURE_DEVICE_COOKIE] != cookie

    @pytest.mark.parametrize("settings_overrides", [{"cookie_secure": False, **CHEAP_HASHES}])
    async def test_development_cookie_is_not_secure(self, client: httpx.AsyncClient) -> None:
        user = await register(client)
        response = await client.post("/token", data=password_form(user["email"]))
        header = response.headers["set-cookie"]
        assert header.startswith("authapi-device=")
        assert "secure" not in header.lower()

    async def test_no_cookie_on_a_failed_grant(self, client: httpx.AsyncClient) -> None:
        user = await register(client)
        response = await client.post("/token", data=password_form(user["email"], "wrong"))
        assert "set-cookie" not in response.headers
