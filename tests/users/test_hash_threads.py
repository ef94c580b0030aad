"""The threads that hash passwords run at a lower CPU priority (a higher nice value)
than the thread that serves requests, so that a flood of logins slows the hashes and
not the event loop; `top -H` shows it as their NI column."""

from __future__ import annotations

import os
import sys
import threading

import httpx
import pytest

from authapi.thread_priority import LOWER_BY, LOWEST, lower_this_thread
from authapi.users.passwords import HASH_THREAD_PREFIX
from tests.support.factories import registered_login

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="a thread's own nice value is Linux's"
)


def nice_of(thread_id: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, thread_id)


def hash_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(HASH_THREAD_PREFIX)]


def nice_after_lowering(starting_nice: int) -> int:
    """The nice value of a new thread that starts at `starting_nice`, then lowers itself."""
    seen: list[int] = []

    def run() -> None:
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, starting_nice)
        lower_this_thread()
        seen.append(nice_of(thread))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return seen[0]


class TestHashThreadPriority:
    async def test_a_hash_thread_is_nicer_than_the_thread_serving_requests(
        self, client: httpx.AsyncClient
    ) -> None:
        await registered_login(client)  # a registration and a login: both hashed
        threads = hash_threads()
        assert threads, "no password-hashing thread ran"
        serving = nice_of(threading.get_native_id())
        assert serving < LOWEST, "this test needs a process that is not at the lowest priority"
        for thread in threads:
            assert thread.native_id is not None
            assert nice_of(thread.native_id) == min(serving + LOWER_BY, LOWEST)

    def test_lowering_leaves_the_calling_thread_alone_elsewhere(self) -> None:
        before = nice_of(threading.get_native_id())
        nice_after_lowering(0)
        assert nice_of(threading.get_native_id()) == before

    @pytest.mark.parametrize(("starting", "lowered"), [(0, LOWEST), (15, LOWEST), (19, LOWEST)])
    def test_never_past_the_lowest_priority(self, starting: int, lowered: int) -> None:
        if starting < nice_of(threading.get_native_id()):
            pytest.skip("raising a thread's priority back needs privileges this run lacks")
        assert nice_after_lowering(starting) == lowered
