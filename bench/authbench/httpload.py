"""A lean load client for the scenarios wrk cannot express (each client carrying its own
state from one response to its next request): closed loop (each client's next request
when its answer came) or paced (requests at a fixed rate, whatever the answers' pace).

Plain HTTP/1.1 keep-alive over asyncio streams on uvloop: httpx needs several times
the CPU per request, and on the load generator's single core the client would then
set the pace instead of the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from authbench.results import percentile


class HttpError(RuntimeError):
    pass


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


class Connection:
    """One keep-alive connection; requests on it go one after another."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.sent_at = 0.0  # monotonic s at which the last request was handed to the socket
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        reply = await self.exchange(method, path, body, headers)
        return reply.status, reply.body

    async def exchange(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """`request`, with the answer's headers."""
        await self.open()
        assert self._reader is not None  # noqa: S101 - opened together
        assert self._writer is not None  # noqa: S101
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        lines.append(f"Content-Length: {len(body)}")
        # A request this small goes to the socket within write() (the loop tries at once),
        # so the time after it is when it was sent, without the await of a drain().
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        self.sent_at = time.monotonic()
        status_line = await self._reader.readline()
        if not status_line:
            raise HttpError("connection closed by the server")
        status = int(status_line.split()[1])
        found: dict[str, str] = {}
        while True:
            line = await self._reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            found[name.strip().lower()] = value.strip()
        if "transfer-encoding" in found:
            raise HttpError("chunked responses are not supported")
        length = int(found.get("content-length", "0"))
        reply = Reply(status, found, await self._reader.readexactly(length))
        if found.get("connection", "").lower() == "close":
            # A server without keep-alive (gunicorn's sync workers): the next request
            # goes over a new connection.
            await self.close()
        return reply

    async def open(self) -> None:
        """Connect now rather than at the first request (a no-op when connected)."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            # The server may have gone first; in a `finally`, raising here would hide
            # the error that brought the client down.
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
            self._writer = None


# One request (or exchange of a few) of one client; raises on failure. It may return the
# seconds of its parts by name (a two-step login's second request), kept beside the whole.
Step = Callable[[], Awaitable[Mapping[str, float] | None]]


@dataclass
class LoadResult:
    seconds: float
    latencies: list[float] = field(default_factory=list)  # s, of requests in the window
    parts: dict[str, list[float]] = field(default_factory=dict)  # s, of the steps' parts
    done: int = 0  # steps completed, those outside the window too

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds

    def ms(self, pct: float) -> float:
        return percentile(self.latencies, pct) * 1000


async def closed_loop(steps: list[Step], warmup: float, duration: float) -> LoadResult:
    """Each step runs back to back in a task of its own; requests that start after
    `warmup` and end before `warmup + duration` count."""
    start = time.perf_counter()
    window_start, window_end = start + warmup, start + warmup + duration
    result = LoadResult(seconds=duration)

    async def client(step: Step) -> None:
        while True:
            began = time.perf_counter()
            if began >= window_end:
                return
            parts = await step()
            ended = time.perf_counter()
            result.done += 1
            if began >= window_start and ended <= window_end:
                result.latencies.append(ended - began)
                for name, seconds in (parts or {}).items():
                    result.parts.setdefault(name, []).append(seconds)

    await asyncio.gather(*(client(step) for step in steps))
    return result


async def paced_loop(steps: list[Step], rate: float, warmup: float, duration: float) -> LoadResult:
    """An open loop: a request due every 1/`rate` s, each taken by whichever client is
    free. A request that finds none free waits for one, and its latency counts from when
    it was due, not from when it went out: a closed loop only ever measures the server
    at the pace it sets itself, so a stall there delays the next requests instead of
    showing in their latencies. Requests due after `warmup` count, each to its end."""
    start = time.perf_counter()
    window_start, window_end = start + warmup, start + warmup + duration
    result = LoadResult(seconds=duration)
    # Clients taken in turn, the longest idle first: one left idle for the whole run
    # would find its connection closed by the server's keep-alive timeout (uvicorn's: 5 s).
    free = deque(steps)
    # Handed over first come, first served (asyncio.Queue is not: a getter arriving just
    # after a put takes the client from one that waited, which waits on, at the back).
    waiting: deque[asyncio.Future[Step]] = deque()

    async def take() -> Step:
        if free:
            return free.popleft()
        waiting.append(asyncio.get_running_loop().create_future())
        return await waiting[-1]

    def give_back(step: Step) -> None:
        if waiting:
            waiting.popleft().set_result(step)
        else:
            free.append(step)

    async def one(due: float) -> None:
        step = await take()
        try:
            await step()
        finally:
            give_back(step)
        result.done += 1
        if due >= window_start:
            result.latencies.append(time.perf_counter() - due)

    requests: list[asyncio.Task[None]] = []
    while (due := start + len(requests) / rate) < window_end:
        if (ahead := due - time.perf_counter()) > 0:
            await asyncio.sleep(ahead)
        requests.append(asyncio.create_task(one(due)))
    await asyncio.gather(*requests)
    return result
