"""A paced probe of one GET route, from a process of its own: how long other requests
wait while a load (the login flood) runs. Its own process, so that the load's client,
whose event loop is busy with hundreds of answers, does not delay the probe's timing.

Each of a few loops sends on a fixed schedule (staggered between loops, `rate` requests
per second in all), or at once when its previous answer came late; so a stall of S ms
yields a handful of samples near S: the max is the stall. Keep-alive connections from
`httpload`, on uvloop, like the suite's other drivers.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import time
from collections.abc import Mapping
from multiprocessing.connection import Connection as Pipe
from multiprocessing.synchronize import Event
from typing import Any

import uvloop

from authbench.httpload import Connection, HttpError

Sample = tuple[float, float, int]  # (start, latency, status); monotonic s; status 0: no answer
FAILED = (OSError, HttpError, asyncio.IncompleteReadError, ValueError)


async def _get(connection: Connection, path: str, headers: Mapping[str, str]) -> int:
    status, _ = await connection.request("GET", path, headers=headers)
    return status


async def _run(
    connections: list[Connection],
    path: str,
    headers: Mapping[str, str],
    rate: float,
    total: int | None,
    stop: Event,
) -> list[Sample]:
    """`total` requests, or until `stop`; with rate 0 the loops send back to back."""
    samples: list[Sample] = []
    issued = 0
    loops = len(connections)
    interval = loops / rate if rate > 0 else 0.0
    begin = time.monotonic()

    async def loop(number: int) -> None:
        nonlocal issued
        due = begin + interval * number / loops
        while True:
            if interval:
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)  # pacing, not synchronisation
                due = max(due + interval, time.monotonic())
            if stop.is_set() or (total is not None and issued >= total):
                return
            issued += 1
            connection = connections[number]
            start = time.monotonic()
            try:
                status = await _get(connection, path, headers)
            except FAILED:
                status = 0  # counted as failed; the next request gets a new connection
                with contextlib.suppress(*FAILED):
                    await connection.close()
                connections[number] = Connection(connection.host, connection.port)
            samples.append((start, time.monotonic() - start, status))

    await asyncio.gather(*(loop(number) for number in range(loops)))
    return samples


async def _serve(
    pipe: Pipe,
    address: tuple[str, int],
    path: str,
    headers: dict[str, str],
    loops: int,
    rate: float,
    stop: Event,
) -> None:
    connections = [Connection(*address) for _ in range(loops)]
    # Open the connections (and warm the server's route) before anything is timed.
    for _ in range(3):
        await asyncio.gather(*(_get(connection, path, headers) for connection in connections))
    pipe.send("ready")
    try:
        while (total := pipe.recv()) != "quit":  # nothing else runs on this loop meanwhile
            if total is None:
                pipe.send("running")
            pipe.send(await _run(connections, path, headers, rate, total, stop))
    finally:
        for connection in connections:
            with contextlib.suppress(*FAILED):
                await connection.close()


def _process(pipe: Pipe, cpu: int | None, *args: Any) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    uvloop.run(_serve(pipe, *args))


class Probe:
    """The probe process: `measure(n)` for n requests, or `start()` ... `stop()`."""

    def __init__(
        self,
        address: tuple[str, int],
        path: str,
        headers: dict[str, str],
        *,
        loops: int,
        rate: float,
        cpu: int | None,
        deadline: float = 30,
    ) -> None:
        context = multiprocessing.get_context("spawn")  # no copy of the caller's threads
        self._stop = context.Event()
        self._pipe, child = context.Pipe()
        self._process = context.Process(
            target=_process,
            args=(child, cpu, address, path, headers, loops, rate, self._stop),
            name="probe",
            daemon=True,
        )
        self._process.start()
        child.close()
        try:
            self._expect("ready", deadline)
        except BaseException:
            self.close()
            raise

    def _receive(self, deadline: float) -> Any:
        if not self._pipe.poll(deadline):
            raise RuntimeError(f"the probe did not answer within {deadline} s")
        return self._pipe.recv()

    def _expect(self, message: str, deadline: float) -> None:
        got = self._receive(deadline)
        if got != message:
            raise RuntimeError(f"the probe said {got!r}, expected {message!r}")

    def measure(self, requests: int, deadline: float) -> list[Sample]:
        self._stop.clear()
        self._pipe.send(requests)
        samples: list[Sample] = self._receive(deadline)
        return samples

    def start(self, deadline: float = 30) -> None:
        self._stop.clear()
        self._pipe.send(None)
        self._expect("running", deadline)

    def stop(self, deadline: float = 120) -> list[Sample]:
        self._stop.set()
        samples: list[Sample] = self._receive(deadline)
        return samples

    def close(self) -> None:
        self._stop.set()  # ends a measurement under way, too
        with contextlib.suppress(OSError, ValueError):
            self._pipe.send("quit")
        self._process.join(5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._pipe.close()
