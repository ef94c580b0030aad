"""The demo SPA (/demo) served by a real `authapi serve`, and what its browser tests
look for on the page (tests/browser/test_demo_spa.py, test_mfa_demo.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from playwright.async_api import Page, Response, expect

from tests.support.factories import PASSWORD
from tests.support.servers import Server, free_port, serving


@dataclass
class Demo:
    server: Server
    # http://localhost:<port>: a secure context, so `__Host-` cookies and WebAuthn work
    # (the RP ID is `localhost`).
    origin: str
    email: str  # a registered user's, with the password PASSWORD

    @property
    def url(self) -> str:
        return f"{self.origin}/demo/"


@contextmanager
def demo_spa(
    database_url: str, data_dir: Path, cwd: Path, *, env: Mapping[str, str] | None = None
) -> Iterator[Demo]:
    # The CSRF check compares the page's Origin with the issuer's, and the passkeys'
    # relying party is the issuer's: the port must be known before the server starts.
    port = free_port()
    origin = f"http://localhost:{port}"
    env = {"AUTHAPI_DEMO_SPA": "true", "AUTHAPI_ISSUER": origin, **(env or {})}
    with serving(database_url, data_dir, cwd, port=port, env=env) as server:
        email = f"spa-{uuid.uuid4().hex}@example.com"
        with httpx.Client(base_url=server.base_url, timeout=10.0) as http:
            registered = http.post("/users", json={"email": email, "password": PASSWORD})
            assert registered.status_code == 201, registered.text
        yield Demo(server, origin, email)


def to(path: str, *, status: int | None = None) -> Callable[[Response], bool]:
    def matches(response: Response) -> bool:
        return urlsplit(response.url).path == path and status in (None, response.status)

    return matches


async def expect_signed_in(page: Page, email: str) -> None:
    await expect(page.locator("#app-view")).to_be_visible()
    await expect(page.locator("#login-view")).to_be_hidden()
    await expect(page.locator("#who")).to_have_text(email)
    assert await page.evaluate("authapiDemo.signedIn()") is True


async def expect_signed_out(page: Page) -> None:
    await expect(page.locator("#login-view")).to_be_visible()
    await expect(page.locator("#app-view")).to_be_hidden()
    assert await page.evaluate("authapiDemo.signedIn()") is False
