"""Browser mode: the refresh token in an HttpOnly cookie, CSRF defence, CORS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.support.factories import PASSWORD, bearer, register

COOKIE = "__Host-authapi-refresh"
MODE = {"X-Token-Delivery": "cookie"}


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client on https, so the Secure cookie is kept and sent like a browser does."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        yield client


async def browser_login(browser: httpx.AsyncClient, **headers: str) -> httpx.Response:
    user = await register(browser)
    return await browser.post(
        "/token",
        data={"grant_type": "password", "username": user["email"], "password": PASSWORD},
        headers={**MODE, **headers},
    )


def set_cookie_header(response: httpx.Response) -> str:
    """The refresh cookie's Set-Cookie header (a password grant sets the device cookie
    of the login throttle too)."""
    (header,) = [h for h in response.headers.get_list("set-cookie") if "authapi-refresh=" in h]
    return header


class TestCookieDelivery:
    async def test_login_sets_the_cookie_and_keeps_the_token_out_of_the_body(
        self, browser: httpx.AsyncClient
    ) -> None:
        response = await browser_login(browser)
        assert response.status_code == 200
        assert "refresh_token" not in response.json()
        cookie = set_cookie_header(response)
        assert cookie.startswith(f"{COOKIE}=rt_")
        for attribute in ("HttpOnly", "Secure", "Path=/", "SameSite=strict", "Max-Age=1209600"):
            assert attribute in cookie
        assert "Domain" not in cookie

    async def test_refresh_reads_and_rotates_the_cookie(self, browser: httpx.AsyncClient) -> None:
        await browser_login(browser)
        first = browser.cookies[COOKIE]
        response = await browser.post("/refresh", headers=MODE)
        assert response.status_code == 200
        assert "refresh_token" not in response.json()
        assert browser.cookies[COOKIE] != first
        claims = await browser.get("/whoami", headers=bearer(response.json()))
        assert claims.status_code == 200

    async def test_logout_ends_the_session_and_clears_the_cookie(
        self, browser: httpx.AsyncClient
    ) -> None:
        await browser_login(browser)
        old = browser.cookies[COOKIE]
        response = await browser.post("/logout", headers=MODE)
        assert response.status_code == 204
        assert "Max-Age=0" in set_cookie_header(response)
        assert COOKIE not in browser.cookies
        again = await browser.post("/refresh", json={"refresh_token": old})
        assert again.json()["error"] == "invalid_grant"

    async def test_body_mode_is_unchanged_for_mobile_clients(
        self, browser: httpx.AsyncClient
    ) -> None:
        user = await register(browser)
        response = await browser.post(
            "/token",
            data={"grant_type": "password", "username": user["email"], "password": PASSWORD},
        )
        assert response.json()["refresh_token"].startswith("rt_")
        assert COOKIE not in response.cookies

    async def test_no_body_and_no_cookie_is_invalid_request(
        self, browser: httpx.AsyncClient
    ) -> None:
        response = await browser.post("/refresh", headers=MODE)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"

    @pytest.mark.parametrize("settings_overrides", [{"cookie_secure": False}])
    async def test_development_cookie_over_plain_http(self, client: httpx.AsyncClient) -> None:
        user = await register(client)
        response = await client.post(
            "/token",
            data={"grant_type": "password", "username": user["email"], "password": PASSWORD},
            headers=MODE,
        )
        cookie = set_cookie_header(response)
        assert cookie.startswith("authapi-refresh=rt_")
        assert "Secure" not in cookie
        assert (await client.post("/refresh", headers=MODE)).status_code == 200


class TestCsrf:
    async def test_cookie_without_the_header_is_refused(self, browser: httpx.AsyncClient) -> None:
        await browser_login(browser)
        before = browser.cookies[COOKIE]
        for path in ("/refresh", "/logout"):
            response = await browser.post(path)
            assert response.status_code == 403
            assert response.json()["error"] == "csrf_rejected"
        assert browser.cookies[COOKIE] == before
        assert (await browser.post("/refresh", headers=MODE)).status_code == 200  # still alive

    @pytest.mark.parametrize(
        "headers",
        [
            {"Origin": "https://evil.example"},
            {"Origin": "null"},
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},
        ],
    )
    async def test_cross_site_requests_are_refused_and_change_nothing(
        self, browser: httpx.AsyncClient, headers: dict[str, str]
    ) -> None:
        await browser_login(browser)
        before = browser.cookies[COOKIE]
        for path in ("/refresh", "/logout"):
            response = await browser.post(path, headers={**MODE, **headers})
            assert response.status_code == 403, path
            assert response.json()["error"] == "csrf_rejected"
        assert browser.cookies[COOKIE] == before
        assert (await browser.post("/refresh", headers=MODE)).status_code == 200

    async def test_cross_site_login_in_browser_mode_is_refused(
        self, browser: httpx.AsyncClient
    ) -> None:
        response = await browser_login(browser, Origin="https://evil.example")
        assert response.status_code == 403
        assert "set-cookie" not in response.headers

    async def test_own_origin_is_allowed(self, browser: httpx.AsyncClient) -> None:
        response = await browser_login(browser, Origin="http://localhost:8000")  # the issuer
        assert response.status_code == 200

    @pytest.mark.parametrize("settings_overrides", [{"cors_origins": ["https://app.example"]}])
    async def test_allowed_origins_pass(self, browser: httpx.AsyncClient) -> None:
        await browser_login(browser, Origin="https://app.example")
        response = await browser.post("/refresh", headers={**MODE, "Origin": "https://app.example"})
        assert response.status_code == 200


class TestCors:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"cors_origins": ["https://app.example"]}

    async def test_preflight_from_an_allowed_origin(self, client: httpx.AsyncClient) -> None:
        response = await client.options(
            "/refresh",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, x-token-delivery",
            },
        )
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "https://app.example"
        assert response.headers["access-control-allow-credentials"] == "true"
        assert "x-token-delivery" in response.headers["access-control-allow-headers"].lower()

    async def test_preflight_from_another_origin_is_refused(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.options(
            "/refresh",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert response.status_code == 400
        assert "access-control-allow-origin" not in response.headers

    async def test_credentials_only_for_allowed_origins(self, client: httpx.AsyncClient) -> None:
        allowed = await client.get("/healthz", headers={"Origin": "https://app.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        assert allowed.headers["access-control-allow-credentials"] == "true"
        other = await client.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers

    @pytest.mark.parametrize("settings_overrides", [{}])
    async def test_no_cors_unless_configured(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/healthz", headers={"Origin": "https://app.example"})
        assert "access-control-allow-origin" not in response.headers

    @pytest.mark.parametrize("origins", [["*"], ["app.example"], ["ftp://x"]])
    def test_wildcards_and_non_origins_are_refused(self, origins: list[str]) -> None:
        from pydantic import ValidationError

        from authapi.config import Settings

        with pytest.raises(ValidationError, match="exact http"):
            Settings(_env_file=None, cors_origins=origins)


def test_production_refuses_insecure_cookies() -> None:
    from pydantic import ValidationError

    from authapi.config import Settings

    with pytest.raises(ValidationError, match="COOKIE_SECURE"):
        Settings(_env_file=None, environment="production", cookie_secure=False)
