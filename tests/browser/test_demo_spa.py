"""The demo SPA in a real browser: browser mode end to end. The refresh token lives in
an HttpOnly cookie the page cannot read, the page refreshes its short-lived access
token silently, two tabs share the cookie and may refresh at the same moment, and
logging out in one tab logs out the other. A signed-out page tries no refresh."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Error,
    Page,
    Request,
    Route,
    expect,
)

from tests.support.browser import ARTIFACTS, TIMEOUT_MS, bounded, chromium, offline_context, text_of
from tests.support.demo import Demo, demo_spa, expect_signed_in, expect_signed_out, to
from tests.support.factories import PASSWORD

# Short, so that the access token expires during the test: the page refreshes it when a
# fifth of its lifetime is left, every 2.4 s.
ACCESS_TOKEN_TTL = 3
COOKIE = "__Host-authapi-refresh"


@pytest.fixture
def demo(database_url: str, data_dir: Path, tmp_path: Path) -> Iterator[Demo]:
    env = {"AUTHAPI_ACCESS_TOKEN_TTL": str(ACCESS_TOKEN_TTL)}
    with demo_spa(database_url, data_dir, tmp_path, env=env) as demo:
        yield demo


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as browser:
        yield browser


def to_refresh(request: Request) -> bool:
    return urlsplit(request.url).path == "/refresh"


def set_cookie_value(header: str | None) -> str:
    """The value of the refresh cookie in a `Cookie` header or in `Set-Cookie` headers
    (one a line), whatever other cookies come with it."""
    assert header is not None
    for line in header.splitlines():
        for pair in line.split(";"):
            name, _, value = pair.strip().partition("=")
            if name == COOKIE:
                return value
    raise AssertionError(f"no {COOKIE} in {header!r}")


async def refresh_cookies(context: BrowserContext) -> list[dict[str, Any]]:
    return [dict(cookie) for cookie in await context.cookies() if cookie["name"] == COOKIE]


async def whoami_in(page: Page) -> dict[str, Any]:
    """Press "Call /whoami": the page calls it with the access token it holds (after a
    401 the page refreshes and calls again: a slow machine may see that)."""
    async with page.expect_response(to("/whoami", status=200)) as whoami:
        await page.locator("#reload-claims").click()
    claims: dict[str, Any] = await bounded((await whoami.value).json())
    await expect(page.locator("#error")).to_have_text("")
    return claims


async def pause_timers(context: BrowserContext, *pages: Page) -> None:
    """Stop the pages' timers (their silent refreshes): from then on, the test's own
    refreshes are the only ones."""
    # The pages' clock cannot go back, and it runs on while this call is on its way:
    # pause it a little ahead. The jump fires the timers due by then, at most one silent
    # refresh per page, and those land before this returns.
    await context.clock.pause_at(time.time() + 5)
    for page in pages:
        await bounded(page.evaluate("authapiDemo.refresh()"))


@contextlib.asynccontextmanager
async def sent_together(*pages: Page, path: str) -> AsyncIterator[list[Route]]:
    """Hold the next request of each page to `path` until every page has sent one, then
    let them all go at once."""
    held: list[Route] = []
    everyone = asyncio.Event()

    async def hold(route: Route) -> None:
        held.append(route)
        if len(held) == len(pages):
            everyone.set()
        with contextlib.suppress(TimeoutError):  # a missing request fails the test below
            await asyncio.wait_for(everyone.wait(), TIMEOUT_MS / 1000)
        await route.continue_()

    pattern = f"**{path}"
    for page in pages:
        await page.route(pattern, hold, times=1)
    try:
        yield held
    finally:
        for page in pages:
            await page.unroute(pattern, hold)


async def test_login_silent_refresh_two_tabs_and_logout(
    demo: Demo, browser: Browser, backend: str
) -> None:
    async with offline_context(browser) as (context, elsewhere):
        await context.clock.install()  # real time, until the test pauses the timers
        page_errors: list[Error] = []
        first = await context.new_page()
        first.on("pageerror", lambda error: page_errors.append(error))

        refreshes_sent: list[str] = []
        context.on(
            "request",
            lambda request: refreshes_sent.append(request.url) if to_refresh(request) else None,
        )

        # Never signed in here: the login form, at once, with no refresh tried (it could
        # only fail) and no error shown.
        await first.goto(demo.url)
        await expect_signed_out(first)
        assert refreshes_sent == []
        await expect(first.locator("#error")).to_have_text("")
        await expect(first.locator("#status")).to_have_text("")

        # Log in through the form.
        await first.locator("#email").fill(demo.email)
        await first.locator("#password").fill(PASSWORD)
        async with first.expect_response(to("/token")) as token:
            await first.locator("#login").click()
        login = await token.value
        assert login.status == 200, await text_of(login)
        tokens = await bounded(login.json())
        assert "refresh_token" not in tokens  # it went into the cookie
        issued = jwt.decode(tokens["access_token"], options={"verify_signature": False})
        await expect_signed_in(first, demo.email)
        shown = json.loads(await first.locator("#claims").inner_text())
        assert shown["sid"] == issued["sid"]
        assert shown["iss"] == demo.origin
        assert shown["scope"] == "profile email"
        ARTIFACTS.mkdir(exist_ok=True)
        await first.screenshot(path=ARTIFACTS / f"demo-spa-{backend}.png", full_page=True)

        # The refresh token is in an HttpOnly, SameSite=Strict, host-only cookie, and
        # nowhere the page's scripts could read it.
        (cookie,) = await refresh_cookies(context)
        assert cookie["value"].startswith("rt_")
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
        assert cookie["secure"] is True
        assert cookie["path"] == "/"
        assert cookie["domain"] == "localhost"
        readable = await first.evaluate(
            "[document.cookie, JSON.stringify(localStorage), JSON.stringify(sessionStorage)]"
        )
        for text in readable:
            assert COOKIE not in text
            assert "rt_" not in text
            assert tokens["access_token"] not in text

        # The access token expires; the page has refreshed it silently before that.
        # (Functions, not expressions: the page's policy allows no eval, which
        # Playwright needs for an expression.)
        await first.wait_for_function("() => authapiDemo.refreshes() >= 1")
        await first.wait_for_function(f"() => Date.now() / 1000 >= {issued['exp']}")
        assert time.time() >= issued["exp"]
        async with httpx.AsyncClient(base_url=demo.server.base_url, timeout=10.0) as http:
            expired = await http.get(
                "/whoami", headers={"Authorization": f"Bearer {tokens['access_token']}"}
            )
        assert expired.status_code == 401
        await expect_signed_in(first, demo.email)
        claims = await whoami_in(first)
        assert claims["sid"] == issued["sid"]  # the same session
        assert claims["jti"] != issued["jti"]  # with a new access token
        assert claims["exp"] > issued["exp"]

        # A second tab shares the cookie jar: it signs in silently.
        second = await context.new_page()
        second.on("pageerror", lambda error: page_errors.append(error))
        await second.goto(demo.url)
        await expect_signed_in(second, demo.email)
        assert (await whoami_in(second))["sid"] == issued["sid"]

        # Both tabs refresh at the same moment, with the same refresh token: within the
        # grace window both succeed and both get the session's newest token. No silent
        # refresh may come in between (nor later, during the logout).
        await pause_timers(context, first, second)
        async with sent_together(first, second, path="/refresh") as held:
            await bounded(
                asyncio.gather(
                    first.evaluate("authapiDemo.refresh()"),
                    second.evaluate("authapiDemo.refresh()"),
                )
            )
        assert len(held) == 2
        presented = {set_cookie_value(await route.request.header_value("cookie")) for route in held}
        assert len(presented) == 1, presented  # the same refresh token, twice
        responses = [await bounded(route.request.response()) for route in held]
        assert [response.status if response else None for response in responses] == [200, 200]
        newest = {
            set_cookie_value(await response.header_value("set-cookie"))
            for response in responses
            if response
        }
        # (`Max-Age` may differ by a second: each answer counts the same deadline from
        # its own clock reading.) Chromium puts the cookie on a held request only once it
        # is let go, so now and then the second carries the first's successor and gets
        # the next one: a plain rotation, no grace needed (tests/sessions cover the grace
        # window itself). Either way both tabs stay in the one session, and the jar holds
        # the newest token.
        assert 1 <= len(newest) <= 2, newest
        (after,) = await refresh_cookies(context)
        assert after["value"] in newest
        assert after["value"] not in presented
        for page in (first, second):
            await expect_signed_in(page, demo.email)
            assert (await whoami_in(page))["sid"] == issued["sid"]

        # Log out in the first tab: it shows the login form, and the cookie is gone.
        async with first.expect_response(to("/logout")) as logout:
            await first.locator("#logout").click()
        assert (await logout.value).status == 204
        await expect_signed_out(first)
        # News, not an error: a polite status line, the alert line stays empty.
        await expect(first.locator("#status")).to_have_text("Logged out.")
        await expect(first.locator("#status")).to_have_attribute("role", "status")
        await expect(first.locator("#error")).to_have_text("")
        assert await refresh_cookies(context) == []
        # The session is over, not just forgotten by the browser.
        async with httpx.AsyncClient(base_url=demo.server.base_url, timeout=10.0) as http:
            reused = await http.post("/refresh", json={"refresh_token": after["value"]})
        assert reused.status_code == 400
        assert reused.json()["error"] == "invalid_grant"

        # The other tab, reloaded, ends on the login form too, without trying a refresh.
        refreshes_sent.clear()
        await second.reload()
        await expect_signed_out(second)
        assert refreshes_sent == []
        await expect(second.locator("#error")).to_have_text("")

        assert page_errors == []
    assert elsewhere == []
