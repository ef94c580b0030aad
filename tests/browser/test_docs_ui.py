"""The interactive docs in a real browser: they load with no internet at all, and their
"Authorize" button logs in with the password flow so that "Try it out" works."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Browser, Error, Request, expect

from tests.support.browser import chromium, offline_context, text_of
from tests.support.factories import PASSWORD
from tests.support.servers import Server, serving


@pytest.fixture
def server(database_url: str, data_dir: Path, tmp_path: Path) -> Iterator[Server]:
    with serving(database_url, data_dir, tmp_path) as server:
        yield server


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as browser:
        yield browser


def is_users_me(request: Request) -> bool:
    return urlsplit(request.url).path == "/users/me"


async def test_authorize_then_try_it_out_with_no_internet(server: Server, browser: Browser) -> None:
    email = f"docs-{uuid.uuid4().hex}@example.com"
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as http:
        registered = await http.post("/users", json={"email": email, "password": PASSWORD})
    assert registered.status_code == 201, registered.text
    docs_url = f"http://localhost:{urlsplit(server.base_url).port}/docs"

    async with offline_context(browser) as (context, elsewhere):
        page = await context.new_page()
        page_errors: list[Error] = []
        page.on("pageerror", lambda error: page_errors.append(error))
        # The page's Content-Security-Policy must not block anything Swagger UI needs.
        refused: list[str] = []
        page.on(
            "console",
            lambda message: (
                refused.append(message.text) if "Content Security Policy" in message.text else None
            ),
        )
        await page.goto(docs_url)

        # Authorize: the OAuth2 password flow dialog posts to our /token.
        await page.locator(".auth-wrapper button.authorize").click()
        dialog = page.locator(".modal-ux")
        await dialog.locator("#oauth_username").fill(email)
        await dialog.locator("#oauth_password").fill(PASSWORD)
        async with page.expect_response(lambda r: urlsplit(r.url).path == "/token") as token:
            await dialog.get_by_role("button", name="Apply given OAuth2 credentials").click()
        assert (await token.value).status == 200, await text_of(await token.value)
        await expect(dialog.get_by_role("button", name="Remove authorization")).to_be_visible()
        await expect(dialog.get_by_text(email)).to_be_visible()
        await dialog.get_by_role("button", name="Close").click()
        await expect(dialog).to_have_count(0)

        # GET /users/me → Try it out → Execute, with the token the dialog obtained.
        operation = page.locator(".opblock-get").filter(
            has=page.locator('.opblock-summary-path[data-path="/users/me"]')
        )
        await operation.locator(".opblock-summary-control").click()
        await operation.get_by_role("button", name="Try it out").click()
        async with page.expect_request(is_users_me) as sent:
            await operation.get_by_role("button", name="Execute").click()
        authorization = await (await sent.value).header_value("authorization")
        assert authorization is not None
        assert authorization.startswith("Bearer ey")

        shown = operation.locator(".live-responses-table .response")
        await expect(shown.locator(".response-col_status")).to_have_text("200")
        # What Swagger UI shows is what the server sent.
        body = json.loads(await shown.locator(".highlight-code pre").inner_text())
        assert body["email"] == email
        assert body["id"] == registered.json()["id"]

        assert page_errors == []
        assert refused == []
    # Everything the docs need comes from this server: not even an attempt elsewhere.
    assert elsewhere == []


async def test_an_injected_script_does_not_run_and_the_page_cannot_be_framed(
    server: Server, browser: Browser
) -> None:
    """The policy /docs is served with holds in a browser: a script that is not the
    page's own is refused, and another site cannot show the password form in a frame."""
    docs_url = f"http://localhost:{urlsplit(server.base_url).port}/docs"
    async with offline_context(browser) as (context, _elsewhere):
        page = await context.new_page()
        await page.goto(docs_url)
        ran = await page.evaluate(
            """() => new Promise((resolve) => {
                window.injectedRan = false;
                const script = document.createElement("script");
                script.textContent = "window.injectedRan = true";
                document.body.appendChild(script);
                setTimeout(() => resolve(window.injectedRan), 0);
            })"""
        )
        assert ran is False
        # A page of another origin (127.0.0.1 is not localhost) framing the docs.
        framing = page.url.replace("localhost", "127.0.0.1").replace("/docs", "/nope")
        await page.goto(framing)
        await page.set_content(f'<iframe id="docs" src="{docs_url}"></iframe>')
        element = await page.wait_for_selector("#docs")
        assert element is not None
        frame = await element.content_frame()
        assert frame is not None
        await frame.wait_for_load_state()
        assert await frame.locator("#swagger-ui").count() == 0


SECOND_FACTOR_OPERATIONS = [
    ("post", "/users/me/mfa/totp"),
    ("post", "/users/me/mfa/totp/confirm"),
    ("delete", "/users/me/mfa/totp"),
    ("post", "/users/me/mfa/recovery-codes"),
    ("post", "/users/me/passkeys/options"),
    ("post", "/users/me/passkeys/step-up-options"),
    ("post", "/users/me/passkeys"),
    ("get", "/users/me/passkeys"),
    ("delete", "/users/me/passkeys/{passkey_id}"),
    ("post", "/passkeys/options"),
    ("delete", "/admin/users/{user_id}/mfa"),
]


async def test_shows_the_second_factors_and_their_grants(server: Server, browser: Browser) -> None:
    """Every endpoint of the contract's "Second factors" is on the page, and /token says
    how to log in with them: the MFA grant and the passkey grant, by their URNs."""
    docs_url = f"http://localhost:{urlsplit(server.base_url).port}/docs"
    async with offline_context(browser) as (context, _elsewhere):
        page = await context.new_page()
        await page.goto(docs_url)
        for method, path in SECOND_FACTOR_OPERATIONS:
            summary = page.locator(f".opblock-{method} .opblock-summary-path[data-path='{path}']")
            await expect(summary, f"{method.upper()} {path}").to_have_count(1)
            await expect(summary).to_be_visible()

        token = page.locator(".opblock-post").filter(
            has=page.locator('.opblock-summary-path[data-path="/token"]')
        )
        await token.locator(".opblock-summary-control").click()
        description = token.locator(".opblock-description-wrapper").first
        await expect(description).to_contain_text("urn:authapi:params:oauth:grant-type:mfa")
        await expect(description).to_contain_text("urn:authapi:params:oauth:grant-type:passkey")
        await expect(description).to_contain_text("mfa_token")
