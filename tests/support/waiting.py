"""Waiting for something another task or instance does, bounded (never a fixed sleep)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest


async def wait_until(condition: Callable[[], bool], within: float = 5.0) -> float:
    """Seconds until `condition` holds; fails the test past `within`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > within:
            pytest.fail(f"condition not met within {within} s")
        await asyncio.sleep(0.005)
    return time.monotonic() - started
