"""Helpers of the real-browser tests (tests/browser/): Debian's Chromium, driven by
Playwright, against `authapi serve`.

The browser is Debian's (`apt-get install chromium`, which `scripts/setup` does), never one
from `playwright install`: the machines that run these tests have no internet. Without
Chromium the tests fail; they never skip.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Response,
    Route,
    async_playwright,
    expect,
)

CHROMIUM = Path(os.environ.get("AUTHAPI_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests run as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# Bounds, not delays: a healthy run finishes each step in a fraction of these.
TIMEOUT_MS = 15_000
expect.set_options(timeout=TIMEOUT_MS)

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

T = TypeVar("T")


async def bounded(awaitable: Awaitable[T]) -> T:
    """For the Playwright calls that take no timeout: evaluating a promise, reading a
    body (which can wait forever, e.g. for a response the page never read)."""
    return await asyncio.wait_for(awaitable, TIMEOUT_MS / 1000)


async def text_of(response: Response) -> str:
    """A response's body for a failure message: what could be read of it in time."""
    try:
        return await asyncio.wait_for(response.text(), 2)
    except Exception as exc:  # anything: it is only for a message
        return f"<body unavailable: {exc!r}>"


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Headless Chromium, closed on the way out whatever happens."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: run scripts/setup, or "
            "`apt-get install --no-install-recommends chromium` (the browser tests never skip)"
        )
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=TIMEOUT_MS
        )
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def offline_context(browser: Browser) -> AsyncIterator[tuple[BrowserContext, list[str]]]:
    """A browser context that may only reach this machine, and the list of every URL it
    tried to fetch elsewhere (each was refused)."""
    attempted: list[str] = []

    async def local_only(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname in LOCAL_HOSTS:
            await route.continue_()
        else:
            attempted.append(url)
            await route.abort("internetdisconnected")

    context = await browser.new_context()
    try:
        context.set_default_timeout(TIMEOUT_MS)
        await context.route("**/*", local_only)
        yield context, attempted
    finally:
        # A request still in a handler when the context goes is no error of the test's.
        await context.unroute_all(behavior="ignoreErrors")
        await context.close()
