"""Second factors in the demo SPA, in a real Chromium: a passkey registered there (with
the browser's virtual authenticator, through the DevTools protocol), then a login with
it alone or after the password; TOTP turned on there (its secret read off the page,
codes computed with pyotp), then a login with the password and a code, or a recovery
code, which works once.

The server runs with the real clock: TOTP codes are of real time steps."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyotp
import pytest
from playwright.async_api import Browser, Page, expect

from tests.support.browser import bounded, chromium, offline_context
from tests.support.demo import Demo, demo_spa, expect_signed_in, expect_signed_out, to
from tests.support.factories import PASSWORD

PASSKEY_KINDS = {"hwk", "swk"}  # RFC 8176: bound to one device, or synced


@pytest.fixture
def demo(database_url: str, data_dir: Path, tmp_path: Path) -> Iterator[Demo]:
    with demo_spa(database_url, data_dir, tmp_path) as demo:
        yield demo


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as browser:
        yield browser


@dataclass
class Tab:
    page: Page
    # What went wrong in the page: uncaught errors, and whatever its policy refused.
    problems: list[str] = field(default_factory=list)


@asynccontextmanager
async def demo_tab(browser: Browser, demo: Demo) -> AsyncIterator[Tab]:
    """The demo open in a browser that has an authenticator with user verification
    (a platform one, as a laptop's), which says yes at once, as a user touching it."""
    async with offline_context(browser) as (context, elsewhere):
        page = await context.new_page()
        tab = Tab(page)
        page.on("pageerror", lambda error: tab.problems.append(str(error)))
        page.on(
            "console",
            lambda message: (
                tab.problems.append(message.text)
                if "Content Security Policy" in message.text
                else None
            ),
        )
        cdp = await context.new_cdp_session(page)
        await cdp.send("WebAuthn.enable")
        await cdp.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                    "automaticPresenceSimulation": True,
                }
            },
        )
        await page.goto(demo.url)
        await expect_signed_out(page)
        yield tab
        assert tab.problems == []
    assert elsewhere == []


async def claims_shown(page: Page) -> dict[str, Any]:
    claims: dict[str, Any] = json.loads(await page.locator("#claims").inner_text())
    return claims


async def secrets_kept_by(page: Page) -> str:
    """Everything the page's scripts could have left behind in the browser."""
    kept: str = await page.evaluate(
        "() => [document.cookie, JSON.stringify(localStorage), JSON.stringify(sessionStorage)]"
        ".join(' ')"
    )
    return kept


async def enter_password(page: Page, email: str) -> None:
    await page.locator("#email").fill(email)
    await page.locator("#password").fill(PASSWORD)
    await page.locator("#login").click()


async def reach_second_step(page: Page, email: str) -> dict[str, Any]:
    """The password, answered 400 mfa_required: the page asks for the second factor.
    The answer's body."""
    async with page.expect_response(to("/token")) as token:
        await enter_password(page, email)
    answer = await token.value
    assert answer.status == 400
    body: dict[str, Any] = await bounded(answer.json())
    assert body["error"] == "mfa_required"
    await expect(page.locator("#second-step-view")).to_be_visible()
    await expect(page.locator("#login-view")).to_be_hidden()
    await expect(page.locator("#error")).to_have_text("")
    assert await page.evaluate("authapiDemo.signedIn()") is False
    assert await page.locator("#password").input_value() == ""
    # The mfa_token is a secret: it stays in the page's memory.
    assert body["mfa_token"] not in await secrets_kept_by(page)
    return body


async def log_in_with_password(page: Page, email: str) -> None:
    await enter_password(page, email)
    await expect_signed_in(page, email)


async def log_out(page: Page) -> None:
    async with page.expect_response(to("/logout", status=204)):
        await page.locator("#logout").click()
    await expect_signed_out(page)


async def add_passkey(page: Page, name: str) -> None:
    await page.locator("#passkey-name").fill(name)
    async with page.expect_response(to("/users/me/passkeys", status=201)):
        await page.locator("#passkey-add").click()
    await expect(page.locator("#status")).to_have_text(
        f'Passkey "{name}" added: you can log in with it.'
    )
    await expect(page.locator("#passkeys li")).to_have_count(1)
    await expect(page.locator("#passkeys li")).to_contain_text(name)
    await expect(page.locator("#mfa-enabled")).to_have_text("yes")


async def turn_on_totp(page: Page) -> tuple[pyotp.TOTP, list[str]]:
    """Through the panel: the password again, the QR code and secret, a first code.
    The app's TOTP (what the page showed) and the recovery codes."""
    await expect(page.locator("#mfa-enabled")).to_have_text("no")
    await page.locator("#totp-password").fill(PASSWORD)
    await page.locator("#totp-start").click()
    await expect(page.locator("#totp-confirm-form")).to_be_visible()
    secret = await page.locator("#totp-secret").inner_text()
    uri = await page.locator("#totp-uri").inner_text()
    assert pyotp.parse_uri(uri).secret == secret
    # The QR code shows: the <img> decoded the SVG (a broken image has no width).
    qr = page.locator("#totp-qr")
    await expect(qr).to_have_attribute("src", re.compile(r"^data:image/svg\+xml;base64,"))
    assert await qr.evaluate("(img) => img.decode().then(() => img.naturalWidth)") > 0

    app = pyotp.TOTP(secret)
    await page.locator("#totp-code").fill(app.now())
    await page.locator("#totp-confirm").click()
    await expect(page.locator("#recovery")).to_be_visible()
    codes = page.locator("#recovery-codes li")
    await expect(codes).to_have_count(10)
    recovery_codes = await codes.all_inner_texts()
    await expect(page.locator("#mfa-enabled")).to_have_text("yes")
    # The secret has left the page.
    await expect(page.locator("#totp-confirm-form")).to_be_hidden()
    await expect(page.locator("#totp-secret")).to_have_text("")
    kept = await secrets_kept_by(page)
    assert secret not in kept
    assert not any(code in kept for code in recovery_codes)

    # Shown once: kept by the user, gone from the page.
    await page.locator("#recovery-done").click()
    await expect(page.locator("#recovery")).to_be_hidden()
    await expect(page.locator("#recovery-codes li")).to_have_count(0)
    return app, recovery_codes


async def enter_code(page: Page, code: str) -> None:
    async with page.expect_response(to("/token")):
        await page.locator("#second-step-code").fill(code)
        await page.locator("#second-step-submit").click()


class TestPasskeys:
    async def test_registered_in_the_demo_it_logs_in_without_a_password(
        self, demo: Demo, browser: Browser
    ) -> None:
        async with demo_tab(browser, demo) as tab:
            page = tab.page
            await log_in_with_password(page, demo.email)
            await expect(page.locator("#mfa-enabled")).to_have_text("no")
            await expect(page.locator("#amr")).to_have_text("pwd")
            await add_passkey(page, "Test laptop")
            await log_out(page)
            await expect(page.locator("#passkeys li")).to_have_count(0)

            async with page.expect_response(to("/token")) as token:
                await page.locator("#passkey-login").click()
            assert (await token.value).status == 200
            await expect_signed_in(page, demo.email)
            amr = (await claims_shown(page))["amr"]
            assert "mfa" in amr
            assert len(PASSKEY_KINDS & set(amr)) == 1, amr
            assert "pwd" not in amr
            await expect(page.locator("#amr")).to_have_text(", ".join(amr))
            await expect(page.locator("#passkeys li")).to_have_count(1)

    async def test_after_the_password_it_is_the_second_step(
        self, demo: Demo, browser: Browser
    ) -> None:
        async with demo_tab(browser, demo) as tab:
            page = tab.page
            await log_in_with_password(page, demo.email)
            await add_passkey(page, "Test laptop")
            await log_out(page)

            second_step = await reach_second_step(page, demo.email)
            assert second_step["mfa_methods"] == ["passkey"]
            # No TOTP: no code to type, only the passkey.
            await expect(page.locator("#second-step-form")).to_be_hidden()
            async with page.expect_response(to("/token")) as token:
                await page.locator("#second-step-passkey").click()
            assert (await token.value).status == 200
            await expect_signed_in(page, demo.email)
            amr = (await claims_shown(page))["amr"]
            assert amr[0] == "pwd"
            assert amr[-1] == "mfa"
            assert len(PASSKEY_KINDS & set(amr)) == 1, amr


class TestTotp:
    async def test_turned_on_in_the_demo_it_is_asked_after_the_password(
        self, demo: Demo, browser: Browser
    ) -> None:
        async with demo_tab(browser, demo) as tab:
            page = tab.page
            await log_in_with_password(page, demo.email)
            app, _ = await turn_on_totp(page)
            await log_out(page)

            second_step = await reach_second_step(page, demo.email)
            assert second_step["mfa_methods"] == ["totp", "recovery_code"]
            await expect(page.locator("#second-step-passkey")).to_be_hidden()
            # A wrong code: said so, and the step stays for another try. (Not the code
            # of the next step, which the login uses.)
            await enter_code(page, app.at(time.time() - 3600))
            await expect(page.locator("#error")).not_to_have_text("")
            await expect(page.locator("#second-step-view")).to_be_visible()
            # Each time step once per account, and the first code used the current one:
            # the next step's code (the server accepts one step of drift).
            await enter_code(page, app.at(time.time() + 30))
            await expect_signed_in(page, demo.email)
            await expect(page.locator("#error")).to_have_text("")
            assert (await claims_shown(page))["amr"] == ["pwd", "otp", "mfa"]
            await expect(page.locator("#amr")).to_have_text("pwd, otp, mfa")

    async def test_a_recovery_code_is_a_second_step_once(
        self, demo: Demo, browser: Browser
    ) -> None:
        async with demo_tab(browser, demo) as tab:
            page = tab.page
            await log_in_with_password(page, demo.email)
            _, recovery_codes = await turn_on_totp(page)
            await log_out(page)

            await reach_second_step(page, demo.email)
            await enter_code(page, recovery_codes[0])
            await expect_signed_in(page, demo.email)
            assert (await claims_shown(page))["amr"] == ["pwd", "otp", "mfa"]
            await log_out(page)

            await reach_second_step(page, demo.email)
            await enter_code(page, recovery_codes[0])
            await expect(page.locator("#error")).not_to_have_text("")
            await expect(page.locator("#second-step-view")).to_be_visible()
            assert await page.evaluate("authapiDemo.signedIn()") is False
            # Refused as used, not as a bad code: the next one works.
            await enter_code(page, recovery_codes[1])
            await expect_signed_in(page, demo.email)
