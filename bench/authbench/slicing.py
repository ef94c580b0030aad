"""Closed-loop loads taken in slices, in turn (A B A B ...), as `wrk.alternating` does
for wrk runs, so that whatever else the machine does meanwhile hits each load alike.

Each slice is a run of its own (its own event loop; the clients' connections are opened
anew, inside the first request's time), the same for every load."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

import uvloop

from authbench import refreshing
from authbench.httpload import Connection, HttpError, LoadResult, Step, closed_loop
from authbench.refreshing import RefreshEndpoint
from authbench.results import percentile

# Wraps each slice (of so many seconds): py-spy recording the server, or nothing.
Around = Callable[[float], AbstractContextManager[object]]


def _nothing(_seconds: float) -> AbstractContextManager[object]:
    return contextlib.nullcontext()


class SlicedLoad(abc.ABC):
    """A closed-loop load run slice by slice; its figures are those of the slices
    together (requests over their total time, percentiles over all the requests)."""

    def __init__(self, around: Around = _nothing) -> None:
        self.latencies: list[float] = []
        self.seconds = 0.0
        self.around = around

    def warm_up(self, seconds: float) -> None:
        """The load for `seconds`, measuring nothing."""
        self._run(seconds, 0.0)

    def run(self, seconds: float) -> None:
        """One slice: `seconds` of the load, measured (and wrapped by `around`)."""
        with self.around(seconds):
            load = self._run(0.0, seconds)
        self.latencies += load.latencies
        self.seconds += seconds

    @abc.abstractmethod
    def _run(self, warmup: float, seconds: float) -> LoadResult: ...

    def reset(self) -> None:
        self.latencies, self.seconds = [], 0.0

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds

    def ms(self, pct: float) -> float:
        return round(percentile(self.latencies, pct) * 1000, 2)


class Refreshers(SlicedLoad):
    """A closed-loop client per session, each refreshing with its newest token."""

    def __init__(
        self,
        base_url: str,
        endpoint: RefreshEndpoint,
        tokens: list[str],
        around: Around = _nothing,
    ) -> None:
        super().__init__(around)
        self.base_url = base_url
        self.endpoint = endpoint
        self.tokens = tokens

    def _run(self, warmup: float, seconds: float) -> LoadResult:
        load, self.tokens = refreshing.run_clients(
            self.base_url, self.tokens, warmup, seconds, self.endpoint
        )
        return load


class Getters(SlicedLoad):
    """`clients` keep-alive connections, each sending `GET path` back to back; any
    answer but 200 fails the load."""

    def __init__(self, base_url: str, path: str, clients: int) -> None:
        super().__init__()
        self.address = refreshing.address(base_url)
        self.path = path
        self.clients = clients

    def _run(self, warmup: float, seconds: float) -> LoadResult:
        connections = [Connection(*self.address) for _ in range(self.clients)]

        def getter(connection: Connection) -> Step:
            async def step() -> None:
                status, answer = await connection.request("GET", self.path)
                if status != 200:
                    raise HttpError(f"GET {self.path}: {status} {answer[:300]!r}")

            return step

        async def run() -> LoadResult:
            try:
                return await closed_loop([getter(c) for c in connections], warmup, seconds)
            finally:
                for connection in connections:
                    await connection.close()

        return uvloop.run(run())


def alternating(loads: Sequence[SlicedLoad], seconds: float, segment: float) -> None:
    """Forget what each load measured so far, then run each for `seconds` in all, in
    slices of about `segment` seconds taken in turn."""
    count = max(1, round(seconds / segment))
    for load in loads:
        load.reset()
    for _ in range(count):
        for load in loads:
            load.run(seconds / count)
