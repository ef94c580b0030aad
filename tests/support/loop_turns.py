"""Counting the turns of the running event loop, for tests of what happens per turn."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager


class TurnCounter:
    """The number of the event loop's turn: a callback that schedules itself runs once
    in each turn."""

    def __init__(self) -> None:
        self.turn = 0
        self._running = True
        asyncio.get_running_loop().call_soon(self._tick)

    def _tick(self) -> None:
        self.turn += 1
        if self._running:
            asyncio.get_running_loop().call_soon(self._tick)

    def stop(self) -> None:
        self._running = False


@contextmanager
def counting_turns() -> Iterator[TurnCounter]:
    counter = TurnCounter()
    try:
        yield counter
    finally:
        counter.stop()
