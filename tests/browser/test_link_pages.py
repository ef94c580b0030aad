"""Mailed links in a real browser: `authapi serve` sends its mail to a real SMTP server
in the test process, and Chromium opens the link read out of the received mail, on
authapi's own pages (AUTHAPI_APP_URL unset) and in the demo SPA (AUTHAPI_APP_URL at
/demo). Opening a link uses nothing up; only pressing the page's button does."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Error,
    Page,
    Request,
    Response,
    Route,
    expect,
)

from tests.support.browser import chromium, offline_context
from tests.support.factories import PASSWORD, password_form
from tests.support.mail import Mailbox, SMTPServer, link_of, smtp_server  # noqa: F401
from tests.support.servers import Server, free_port, serving

NEW_PASSWORD = "a new and better passphrase"
# Every violation of a page's Content-Security-Policy, recorded by the page itself (an
# init script, which the policy does not govern).
RECORD_CSP_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


@dataclass
class Served:
    server: Server
    origin: str  # http://localhost:<port>, the issuer: links point there
    mailbox: Mailbox

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.server.base_url, timeout=10.0)

    async def register(self) -> str:
        """A new account; its verification mail is left in the inbox."""
        email = f"links-{uuid.uuid4().hex}@example.com"
        async with self.http() as http:
            response = await http.post("/users", json={"email": email, "password": PASSWORD})
        assert response.status_code == 201, response.text
        return email

    async def login_status(self, email: str, password: str) -> int:
        async with self.http() as http:
            return (await http.post("/token", data=password_form(email, password))).status_code

    async def email_verified(self, email: str) -> bool:
        async with self.http() as http:
            tokens = await http.post("/token", data=password_form(email))
            assert tokens.status_code == 200, tokens.text
            headers = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
            verified: bool = (await http.get("/users/me", headers=headers)).json()["email_verified"]
            return verified

    async def forgot(self, email: str) -> None:
        async with self.http() as http:
            response = await http.post("/password/forgot", json={"email": email})
        assert response.status_code == 202, response.text


def serve(
    database_url: str, data_dir: Path, cwd: Path, smtp: SMTPServer, **env: str
) -> Iterator[Served]:
    # The issuer is the address the browser uses: the port must be known beforehand.
    port = free_port()
    origin = f"http://localhost:{port}"
    env = {
        "AUTHAPI_ISSUER": origin,
        "AUTHAPI_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
        **{key: value.format(origin=origin) for key, value in env.items()},
    }
    with serving(database_url, data_dir, cwd, port=port, env=env) as server:
        yield Served(server, origin, Mailbox(smtp))


@pytest.fixture
def own_pages(
    database_url: str,
    data_dir: Path,
    tmp_path: Path,
    smtp_server: SMTPServer,  # noqa: F811
) -> Iterator[Served]:
    yield from serve(database_url, data_dir, tmp_path, smtp_server)


@pytest.fixture
def demo_links(
    database_url: str,
    data_dir: Path,
    tmp_path: Path,
    smtp_server: SMTPServer,  # noqa: F811
) -> Iterator[Served]:
    yield from serve(
        database_url,
        data_dir,
        tmp_path,
        smtp_server,
        AUTHAPI_DEMO_SPA="true",
        AUTHAPI_APP_URL="{origin}/demo",
    )


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as browser:
        yield browser


@dataclass
class Tab:
    page: Page
    errors: list[Error]

    async def csp_violations(self) -> list[str]:
        violations: list[str] = await self.page.evaluate("window.cspViolations")
        return violations


async def open_tab(context: BrowserContext) -> Tab:
    page = await context.new_page()
    errors: list[Error] = []
    page.on("pageerror", lambda error: errors.append(error))
    return Tab(page, errors)


@pytest.fixture
async def browser_context(browser: Browser) -> AsyncIterator[BrowserContext]:
    async with offline_context(browser) as (context, elsewhere):
        await context.add_init_script(RECORD_CSP_VIOLATIONS)
        yield context
    assert elsewhere == []


def post_to(path: str) -> Callable[[Response], bool]:
    def matches(response: Response) -> bool:
        return response.request.method == "POST" and urlsplit(response.url).path == path

    return matches


def posts(tab: Tab, path: str) -> list[Request]:
    """Every POST the tab sends to `path` from now on."""
    sent: list[Request] = []
    tab.page.on(
        "request",
        lambda request: (
            sent.append(request)
            if request.method == "POST" and urlsplit(request.url).path == path
            else None
        ),
    )
    return sent


async def expect_clean(tab: Tab) -> None:
    assert tab.errors == []
    assert await tab.csp_violations() == []


class TestOwnPages:
    async def test_verify_an_address_from_the_mailed_link(
        self, own_pages: Served, browser_context: BrowserContext, browser: Browser
    ) -> None:
        email = await own_pages.register()
        link = link_of(await own_pages.mailbox.receive(email))
        assert link.startswith(f"{own_pages.origin}/email/verify#token=ev_")

        # Opened, as a mail scanner would, and left: the token is not used up.
        scanner = await open_tab(browser_context)
        sent = posts(scanner, "/email/verify")
        await scanner.page.goto(link)
        await expect(scanner.page.locator("#verify-email")).to_be_visible()
        # The token is out of the address bar at once.
        assert scanner.page.url == f"{own_pages.origin}/email/verify"
        await expect_clean(scanner)
        await scanner.page.close()
        assert sent == []
        assert await own_pages.email_verified(email) is False

        owner = await open_tab(browser_context)
        await owner.page.goto(link)
        async with owner.page.expect_response(post_to("/email/verify")) as answer:
            await owner.page.get_by_role("button", name="Confirm my address").click()
        assert (await answer.value).status == 200
        await expect(owner.page.locator("#outcome")).to_have_text(
            "Your email address is confirmed. You can close this page."
        )
        await expect(owner.page.locator("#verify-email")).to_be_hidden()
        assert await own_pages.email_verified(email) is True

        await expect_clean(owner)

        # The link worked once: opened again (in a new tab: in the same one, only the
        # fragment would change, and the page would not load again), it says so.
        again = await open_tab(browser_context)
        await again.page.goto(link)
        async with again.page.expect_response(post_to("/email/verify")) as answer:
            await again.page.get_by_role("button", name="Confirm my address").click()
        assert (await answer.value).status == 400
        await expect(again.page.locator("#outcome")).to_have_text(
            "This link is invalid, already used or expired. Ask for a new one."
        )
        await expect(again.page.locator("#verify-email")).to_be_visible()
        await expect_clean(again)

        # Without JavaScript the page says what it needs, and shows no form.
        without_js = await browser.new_context(java_script_enabled=False)
        try:
            page = await without_js.new_page()
            await page.goto(link)
            await expect(page.locator("noscript .notice")).to_contain_text("needs JavaScript")
            await expect(page.locator("#verify-email")).to_be_hidden()
        finally:
            await without_js.close()

    async def test_says_when_to_try_again(
        self, own_pages: Served, browser_context: BrowserContext
    ) -> None:
        """A 429 (the page's POST answered as a limiter would) and a server out of
        reach: each tells the owner what to do, and the form stays for another try."""
        answers = iter(["429", "unreachable"])

        async def answer(route: Route) -> None:
            if route.request.method != "POST":
                await route.continue_()
            elif next(answers) == "429":
                await route.fulfill(
                    status=429,
                    headers={"Retry-After": "7"},
                    json={"error": "rate_limited", "error_description": "Too many requests."},
                )
            else:
                await route.abort("connectionrefused")

        tab = await open_tab(browser_context)
        await tab.page.route("**/email/verify", answer)
        await tab.page.goto(f"{own_pages.origin}/email/verify#token=ev_{'A' * 43}")
        button = tab.page.get_by_role("button", name="Confirm my address")
        await button.click()
        await expect(tab.page.locator("#outcome")).to_have_text(
            "Too many attempts. Try again in 7 seconds."
        )
        await button.click()
        await expect(tab.page.locator("#outcome")).to_have_text(
            "The server could not be reached. Try again."
        )
        await expect(button).to_be_enabled()
        await expect_clean(tab)

    async def test_reset_a_password_from_the_mailed_link(
        self, own_pages: Served, browser_context: BrowserContext
    ) -> None:
        email = await own_pages.register()
        await own_pages.mailbox.receive(email)  # the verification mail
        await own_pages.forgot(email)
        link = link_of(await own_pages.mailbox.receive(email))
        assert link.startswith(f"{own_pages.origin}/password/reset#token=pr_")

        tab = await open_tab(browser_context)
        sent = posts(tab, "/password/reset")
        await tab.page.goto(link)
        assert tab.page.url == f"{own_pages.origin}/password/reset"
        form = tab.page.locator("#reset-password")
        await expect(form).to_be_visible()

        # Checked in the page first: nothing is sent.
        await tab.page.get_by_label("New password").fill(NEW_PASSWORD)
        await tab.page.get_by_label("The same again").fill(NEW_PASSWORD + "!")
        await tab.page.get_by_role("button", name="Set the new password").click()
        await expect(tab.page.locator("#outcome")).to_have_text("The two passwords differ.")
        await tab.page.get_by_label("New password").fill("short")
        await tab.page.get_by_label("The same again").fill("short")
        await tab.page.get_by_role("button", name="Set the new password").click()
        await expect(tab.page.locator("#outcome")).to_have_text(
            "The password must have 8 to 128 characters."
        )
        assert sent == []

        await tab.page.get_by_label("New password").fill(NEW_PASSWORD)
        await tab.page.get_by_label("The same again").fill(NEW_PASSWORD)
        async with tab.page.expect_response(post_to("/password/reset")) as answer:
            await tab.page.get_by_role("button", name="Set the new password").click()
        assert (await answer.value).status == 204
        await expect(tab.page.locator("#outcome")).to_contain_text("Your password is changed")
        await expect(form).to_be_hidden()
        await expect_clean(tab)

        assert await own_pages.login_status(email, NEW_PASSWORD) == 200
        assert await own_pages.login_status(email, PASSWORD) == 400


async def log_in(page: Page, email: str, password: str) -> None:
    await page.locator("#email").fill(email)
    await page.locator("#password").fill(password)
    async with page.expect_response(post_to("/token")):
        await page.locator("#login").click()


class TestDemoSpa:
    async def test_resend_and_verify_in_the_spa(
        self, demo_links: Served, browser_context: BrowserContext
    ) -> None:
        email = await demo_links.register()
        await demo_links.mailbox.receive(email)  # the sign-up mail; the test asks for another
        tab = await open_tab(browser_context)
        await tab.page.goto(f"{demo_links.origin}/demo/")
        await log_in(tab.page, email, PASSWORD)
        await expect(tab.page.locator("#app-view")).to_be_visible()
        await expect(tab.page.locator("#email-verified")).to_have_text("no")

        async with tab.page.expect_response(post_to("/email/verification")) as answer:
            await tab.page.locator("#resend-verification").click()
        assert (await answer.value).status == 202
        await expect(tab.page.locator("#status")).to_have_text(
            "A new verification mail is on its way."
        )
        link = link_of(await demo_links.mailbox.receive(email))
        assert link.startswith(f"{demo_links.origin}/demo/email/verify#token=ev_")

        await tab.page.goto(link)
        assert tab.page.url == f"{demo_links.origin}/demo/email/verify"
        async with tab.page.expect_response(post_to("/email/verify")) as answer:
            await tab.page.locator("#confirm-email").click()
        assert (await answer.value).status == 200
        # Still signed in (the cookie): back in the app, which now says verified.
        await expect(tab.page.locator("#app-view")).to_be_visible()
        await expect(tab.page.locator("#status")).to_have_text("Your email address is confirmed.")
        await expect(tab.page.locator("#email-verified")).to_have_text("yes")
        await expect(tab.page.locator("#resend-verification")).to_be_hidden()
        assert tab.page.url == f"{demo_links.origin}/demo/"
        assert tab.errors == []

    async def test_reset_a_password_in_the_spa(
        self, demo_links: Served, browser_context: BrowserContext
    ) -> None:
        email = await demo_links.register()
        await demo_links.mailbox.receive(email)  # the verification mail
        tab = await open_tab(browser_context)
        await tab.page.goto(f"{demo_links.origin}/demo/")
        await tab.page.locator("#email").fill(email)
        await tab.page.get_by_role("button", name="Forgot password?").click()
        await expect(tab.page.locator("#forgot-email")).to_have_value(email)
        async with tab.page.expect_response(post_to("/password/forgot")) as answer:
            await tab.page.locator("#send-reset").click()
        assert (await answer.value).status == 202
        await expect(tab.page.locator("#login-view")).to_be_visible()
        await expect(tab.page.locator("#status")).to_contain_text("is on its way")

        link = link_of(await demo_links.mailbox.receive(email))
        assert link.startswith(f"{demo_links.origin}/demo/password/reset#token=pr_")
        await tab.page.goto(link)
        assert tab.page.url == f"{demo_links.origin}/demo/password/reset"
        await tab.page.locator("#new-password").fill(NEW_PASSWORD)
        await tab.page.locator("#confirm-password").fill(NEW_PASSWORD)
        async with tab.page.expect_response(post_to("/password/reset")) as answer:
            await tab.page.locator("#set-password").click()
        assert (await answer.value).status == 204
        await expect(tab.page.locator("#login-view")).to_be_visible()
        await expect(tab.page.locator("#status")).to_have_text(
            "Your password is changed. Log in with the new password."
        )

        # The old password no longer logs in, the new one does; and the reset showed
        # that the address is the user's.
        await log_in(tab.page, email, PASSWORD)
        await expect(tab.page.locator("#error")).not_to_have_text("")
        await expect(tab.page.locator("#login-view")).to_be_visible()
        await log_in(tab.page, email, NEW_PASSWORD)
        await expect(tab.page.locator("#app-view")).to_be_visible()
        await expect(tab.page.locator("#who")).to_have_text(email)
        await expect(tab.page.locator("#email-verified")).to_have_text("yes")
        assert tab.errors == []
