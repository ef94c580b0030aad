"""Closed-loop loads (and wrk beside them) taken in slices, in turn (A B A B ...), as
`wrk.alternating` does for wrk runs alone, so that whatever else the machine does
meanwhile hits each load alike.

Each closed-loop slice is a run of its own (its own event loop; the clients'
connections are opened anew, inside the first request's time)."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from authbench import accounts, refreshing, wrk
from authbench.httpload import LoadResult
from authbench.refreshing import RefreshEndpoint
from authbench.results import percentile
from authbench.wrk import WrkResult

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

    def paced(self, rate: float, warmup: float, seconds: float) -> LoadResult:
        """One run at `rate` refreshes/s (`httpload.paced_loop`) by the same clients."""
        load, self.tokens = refreshing.run_clients(
            self.base_url, self.tokens, warmup, seconds, self.endpoint, rate
        )
        return load


def logged_in_refreshers(
    base_url: str, email: str, clients: int, around: Around = _nothing
) -> Refreshers:
    """A user registered on the authapi server at `base_url`, logged in `clients` times,
    and a refresher for each of those sessions."""
    accounts.register(base_url, email)
    sessions = accounts.login_many(base_url, email, clients)
    tokens = [tokens.refresh_token for tokens in sessions]
    return Refreshers(base_url, refreshing.AUTHAPI, tokens, around)


class WrkSlices:
    """A wrk load taken in slices beside closed-loop ones (whole seconds: wrk's `-d`);
    `result` is the slices together (`wrk.combine`)."""

    def __init__(self, load: Callable[[int], WrkResult]) -> None:
        self.load = load
        self.slices: list[WrkResult] = []

    def run(self, seconds: float) -> None:
        self.slices.append(self.load(max(1, round(seconds))))

    def reset(self) -> None:
        self.slices = []

    @property
    def result(self) -> WrkResult:
        return wrk.combine(self.slices)


class Sliced(Protocol):
    def run(self, seconds: float) -> None: ...

    def reset(self) -> None: ...


def alternating(loads: Sequence[Sliced], seconds: float, segment: float) -> None:
    """Forget what each load measured so far, then run each for `seconds` in all, in
    slices of about `segment` seconds taken in turn."""
    count = max(1, round(seconds / segment))
    for load in loads:
        load.reset()
    for _ in range(count):
        for load in loads:
            load.run(seconds / count)
