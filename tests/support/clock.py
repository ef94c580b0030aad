"""Time that tests move instead of sleeping."""

from __future__ import annotations

from datetime import datetime, timedelta

from authapi.clock import Clock


class FakeClock(Clock):
    """The app's clock, moved by tests instead of sleeping."""

    def __init__(self) -> None:
        self._offset = timedelta()

    def now(self) -> datetime:
        return super().now() + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += timedelta(seconds=seconds)
