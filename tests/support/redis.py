"""A Redis server of the test's own (Debian's redis-server), on a free port, that the
test can stop and start again on the same port (an outage of the rate limits'
storage) or pause with SIGSTOP (a hung one)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.support.servers import free_port

# The Redis server the tests share (CI runs one there, as does a developer machine);
# tests that stop or pause Redis start their own (ThrowawayRedis).
REDIS_URL = "redis://127.0.0.1:6379"
# Seconds: how long a throwaway Redis may take to start answering, or to stop.
START_DEADLINE = 10.0


class ThrowawayRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self._process is not None, "the throwaway Redis is not running"
        return self._process

    def start(self) -> None:
        self._process = subprocess.Popen(  # noqa: S603 - fixed arguments of our own
            [  # noqa: S607 - Debian's redis-server, as CI has it
                *("redis-server", "--bind", "127.0.0.1", "--port", str(self.port)),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        ping = ["redis-cli", "-p", str(self.port), "ping"]
        for _ in range(int(START_DEADLINE * 20)):
            result = subprocess.run(ping, capture_output=True, check=False)  # noqa: S603
            if result.stdout.strip() == b"PONG":
                return
            if self._process.poll() is not None:
                break
            time.sleep(0.05)  # a readiness poll, bounded above; no timing is under test
        self.stop()
        pytest.fail(f"redis-server did not come up on port {self.port}")

    def pause(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                self.resume()  # a paused server would not act on SIGTERM
            self._process.terminate()
            self._process.wait(timeout=START_DEADLINE)
            self._process = None


@contextmanager
def throwaway_redis() -> Iterator[ThrowawayRedis]:
    """A running throwaway Redis, stopped (resumed first, if paused) on the way out."""
    redis = ThrowawayRedis()
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()
