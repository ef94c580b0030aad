"""Login-flood benchmark: memory and /whoami latency while 500 logins arrive at once.

What it does, per run:

1. starts `authapi serve` on a free port with a fresh data directory (embedded SQLite,
   or a fresh PostgreSQL database with `--postgres`) and
   `AUTHAPI_RATE_LIMIT_ENABLED=false`, so the flood reaches the password hasher instead
   of being refused by the per-address limit; the server is pinned to one CPU
   (`taskset`), the load generator to another (`os.sched_setaffinity`);
2. registers a user and logs it in once (the access token the probe uses);
3. idle phase: a steady probe (4 concurrent loops of `GET /whoami`, 200 requests/s in
   all, on a fixed schedule; `--probe-rate 0` sends back to back) -> p50/p99;
4. flood phase: M concurrent `POST /token` password grants (half with the right
   password, half with a wrong one) from one asyncio event loop, each on a connection
   of its own (plain HTTP/1.1 over asyncio streams: an httpx pool of 500 connections
   needs more CPU than the server and would set the pace itself), while the same probe
   keeps measuring `/whoami`; only probe requests that start during the flood (first
   login sent .. last login answered) count;
5. samples the server's RSS and thread count from /proc/<pid>/status all along (plus
   VmHWM), its CPU time, and how long its event loop thread waited for the CPU.

The probe runs in its own process on the load generator's CPU, so that the flood
client's event loop (busy with hundreds of responses) does not delay the probe's own
timing. Results: `bench/results/login_flood.{json,md}` (full mode), a temporary
directory (`--quick`), or `--output`.

    .venv/bin/python bench/login_flood.py            # 3 runs, 500 logins, the medians
    .venv/bin/python bench/login_flood.py --quick    # CI smoke run: 50 logins, < 30 s
    .venv/bin/python bench/login_flood.py --env AUTHAPI_HASH_WORKERS=1 --output /tmp/x.json
    .venv/bin/python bench/login_flood.py --sweep --postgres \\
        postgresql+asyncpg://postgres@127.0.0.1:5432/postgres  # the settings compared

On a machine shared with other work, `--nice -10` (root) keeps it from disturbing the
figures as much, and each run records how much of the server's CPU other processes
took and how long the server's event loop waited for its CPU: read the figures with
those.

Exit status 1 if anything answered outside the contract (a login status other than
200/400/503, a 503 without Retry-After, a failed probe request); speed is never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import datetime as dt
import importlib.metadata
import json
import multiprocessing
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlencode

import httpx

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"

EMAIL = "flood@example.com"
PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway benchmark user
WRONG_PASSWORD = "wrong horse battery staple"  # noqa: S105
PACKAGES = ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "argon2-cffi", "libpass")
CLIENT_PACKAGES = ("httpx",)
# The reference figure from the abuse-resistance issue (a minimal fastapi-users app).
REFERENCE = {"app": "minimal fastapi-users app, GET /hello", "idle_p99_ms": 4, "flood_p99_ms": 890}


@dataclass(frozen=True)
class Config:
    label: str
    env: dict[str, str]  # server environment on top of the defaults
    postgres: bool = False  # PostgreSQL (needs --postgres) instead of the embedded SQLite


W1 = {"AUTHAPI_HASH_WORKERS": "1"}
W2 = {"AUTHAPI_HASH_WORKERS": "2"}
# Configurations `--sweep` compares; the PostgreSQL ones need --postgres.
SWEEP: tuple[Config, ...] = (
    Config("SQLite, defaults (workers=nproc, queue=32)", {}),
    Config("SQLite, workers=1, queue=32", W1),
    Config("SQLite, workers=1, queue=8", {**W1, "AUTHAPI_HASH_QUEUE": "8"}),
    Config("SQLite, workers=1, queue=128", {**W1, "AUTHAPI_HASH_QUEUE": "128"}),
    Config("SQLite, workers=2, queue=8", {**W2, "AUTHAPI_HASH_QUEUE": "8"}),
    Config("SQLite, workers=2, queue=128", {**W2, "AUTHAPI_HASH_QUEUE": "128"}),
    Config("PostgreSQL, defaults (workers=nproc, queue=32)", {}, postgres=True),
    Config("PostgreSQL, workers=1, queue=32", W1, postgres=True),
)

# Before each run, wait (up to --quiet-wait seconds) for a second in which the machine's
# CPUs are less busy than this, all together.
QUIET_BUSY_SHARE = 0.25
# Margin of the memory bound over startup RSS + hash_workers x argon2 memory cost.
MEMORY_MARGIN_MIB = 32
DEFAULT_PROBE_RATE = 200.0  # /whoami requests per second during both phases
HEALTH_DEADLINE = 20.0  # seconds for the server to answer /healthz
STOP_DEADLINE = 15.0  # seconds for the server to stop after SIGTERM
POLL_INTERVAL = 0.05
RSS_INTERVAL = 0.005


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# --- small helpers ---------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); nan if empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def mib(kib: int) -> float:
    return round(kib / 1024, 1)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def versions(names: Sequence[str]) -> dict[str, str]:
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def authapi_command() -> str:
    beside = Path(sys.executable).parent / "authapi"
    if beside.exists():
        return str(beside)
    found = shutil.which("authapi")
    if found is None:
        raise SystemExit("login_flood: the `authapi` command is not installed")
    return found


@dataclass(frozen=True)
class Pinning:
    server_cpu: int | None
    client_cpu: int | None

    @classmethod
    def choose(cls) -> Pinning:
        allowed = sorted(os.sched_getaffinity(0))
        if len(allowed) < 2:  # one CPU (a small CI runner): nothing to pin apart
            return cls(None, None)
        return cls(allowed[0], allowed[1])


# --- /proc: memory and CPU time of the server ------------------------------------------


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (uvicorn forks workers only with --workers > 1). Only
    the main threads' children are looked at: uvicorn forks from its main thread, and
    a flood on SQLite runs hundreds of threads that would make every sample slow."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{current}/task/{current}/children").read_text()
            todo.extend(int(child) for child in children.split())
    return pids


def status_figures(pid: int, *names: str) -> list[int]:
    """/proc/<pid>/status figures (`VmRSS`, `VmHWM` in KiB, `Threads`) summed over the
    process tree; 0 once it is gone."""
    totals = dict.fromkeys(names, 0)
    for each in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                name, _, value = line.partition(":")
                if name in totals:
                    totals[name] += int(value.split()[0])
    return [totals[name] for name in names]


def status_kib(pid: int, name: str) -> int:
    return status_figures(pid, name)[0]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process tree."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for each in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def event_loop_stats(pid: int) -> tuple[float, float]:
    """(CPU s, s spent runnable but waiting for a CPU) of the server's main thread, the
    one that runs the event loop, from /proc/<pid>/task/<pid>/schedstat. (Python 3.11
    does not name its threads for the OS, so the hashing threads cannot be told apart
    from aiosqlite's: all the others are counted as the process's CPU minus this.)"""
    with contextlib.suppress(OSError, ValueError):
        cpu_ns, wait_ns = Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[:2]
        return int(cpu_ns) / 1e9, int(wait_ns) / 1e9
    return float("nan"), float("nan")


def usage(before: tuple[float, float], after: tuple[float, float]) -> tuple[float, float]:
    return after[0] - before[0], after[1] - before[1]


def own_cpu_seconds() -> float:
    """CPU time of this process (the flood client and the RSS sampler thread)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_jiffies() -> dict[int, tuple[int, int]]:
    """(busy, total) clock ticks of each CPU since boot, from /proc/stat."""
    found = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(value) for value in values[:8]]
            idle = ticks[3] + ticks[4]  # idle + iowait
            found[int(name[3:])] = (sum(ticks) - idle, sum(ticks))
    return found


def busy_share(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]) -> float:
    """Busy fraction of all CPUs between two `cpu_jiffies` snapshots."""
    busy = sum(after[cpu][0] - before[cpu][0] for cpu in after if cpu in before)
    total = sum(after[cpu][1] - before[cpu][1] for cpu in after if cpu in before)
    return busy / total if total else 0.0


def foreign_share(
    cpu: int | None,
    before: dict[int, tuple[int, int]],
    after: dict[int, tuple[int, int]],
    server_seconds: float,
) -> float:
    """Share of the server's CPU that other processes (another test run, ...) used."""
    if cpu is None or cpu not in before or cpu not in after:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    busy = (after[cpu][0] - before[cpu][0]) / ticks
    total = (after[cpu][1] - before[cpu][1]) / ticks
    return max(0.0, busy - server_seconds) / total if total else 0.0


def wait_for_quiet(limit: float, window: float, deadline: float) -> tuple[float, float]:
    """Poll until the machine is less than `limit` busy over a `window`, at most
    `deadline` seconds; return (seconds waited, last busy share)."""
    start = time.monotonic()
    share = 0.0
    while True:
        before = cpu_jiffies()
        time.sleep(window)
        share = busy_share(before, cpu_jiffies())
        waited = time.monotonic() - start
        if share < limit or waited >= deadline:
            return waited, share


def set_priority(nice: int, pid: int = 0) -> bool:
    """Give a process (and its scheduler autogroup, see sched(7)) the nice value `nice`,
    so that other work on a shared machine disturbs the measurement less. Children
    inherit it. Lower values need root or CAP_SYS_NICE; False if refused."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
        autogroup = Path(f"/proc/{pid or 'self'}/autogroup")
        if autogroup.exists():
            autogroup.write_text(str(nice))
    except OSError:
        return False
    return True


class RssSampler:
    """Samples the server's RSS in a thread, every few milliseconds."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, int]] = []
        self.threads: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            rss, threads = status_figures(self.pid, "VmRSS", "Threads")
            self.samples.append((now, rss))
            self.threads.append((now, threads))
            self._stop.wait(RSS_INTERVAL)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self, start: float, end: float) -> int:
        return max((kib for at, kib in self.samples if start <= at <= end), default=0)

    def peak_threads(self, start: float, end: float) -> int:
        return max((count for at, count in self.threads if start <= at <= end), default=0)


# --- the server ------------------------------------------------------------------------


class Server:
    """`authapi serve` in a subprocess, with its own data directory; always stopped."""

    def __init__(self, overrides: dict[str, str], pinning: Pinning, nice: int) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="authapi-flood-")
        self.data_dir = Path(self._tmp.name)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = server_environment(self.data_dir, overrides)
        self.command = [authapi_command(), "serve", "--port", str(self.port)]
        taskset = shutil.which("taskset")
        if pinning.server_cpu is not None and taskset:
            self.command = [taskset, "-c", str(pinning.server_cpu), *self.command]
        self._log_path = self.data_dir / "server.log"
        self._log = self._log_path.open("wb")
        atexit.register(self.stop)
        try:
            self._start(pinning, nice, taskset)
        except BaseException:
            self.stop()
            raise

    def _start(self, pinning: Pinning, nice: int, taskset: str | None) -> None:
        if "AUTHAPI_DATABASE_URL" in self.env:  # PostgreSQL: `serve` wants a migrated schema
            subprocess.run(  # noqa: S603 - our own command line
                [authapi_command(), "migrate"],
                env=self.env,
                cwd=self.data_dir,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=120,
            )
        self.process = subprocess.Popen(  # noqa: S603 - our own command line
            self.command,
            env=self.env,
            cwd=self.data_dir,  # so that no .env of the caller is read
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if pinning.server_cpu is not None and not taskset:
            os.sched_setaffinity(self.process.pid, {pinning.server_cpu})
        if nice:  # the process inherited it; its new session has an autogroup of its own
            set_priority(nice, self.process.pid)

    @property
    def pid(self) -> int:
        assert self.process is not None  # noqa: S101 - set by __init__ or it raised
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def wait_healthy(self, deadline: float) -> None:
        until = time.monotonic() + deadline
        assert self.process is not None  # noqa: S101 - set by __init__ or it raised
        with httpx.Client(base_url=self.base_url, timeout=2) as client:
            while time.monotonic() < until:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"the server exited ({self.process.returncode}):\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/healthz").status_code == 200:
                        return
                time.sleep(POLL_INTERVAL)
        raise RuntimeError(f"no /healthz within {deadline} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after a deadline) and remove its data."""
        atexit.unregister(self.stop)
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
        self._tmp.cleanup()


@contextlib.contextmanager
def postgres_database(admin_url: str | None) -> Iterator[dict[str, str]]:
    """A fresh PostgreSQL database for one run (dropped afterwards), as server
    environment; nothing without `admin_url` (the embedded SQLite file is used)."""
    if admin_url is None:
        yield {}
        return
    import asyncpg

    dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    name = f"authapi_flood_{os.getpid()}_{time.monotonic_ns()}"

    async def execute(statement: str) -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        base = admin_url.rsplit("/", 1)[0]
        yield {"AUTHAPI_DATABASE_URL": f"{base}/{name}"}
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def server_environment(data_dir: Path, overrides: dict[str, str]) -> dict[str, str]:
    # No AUTHAPI_* setting of the caller leaks in: the figures depend on this list only.
    env = {key: value for key, value in os.environ.items() if not key.startswith("AUTHAPI_")}
    env.update(
        {
            "AUTHAPI_DATA_DIR": str(data_dir),
            "AUTHAPI_RATE_LIMIT_ENABLED": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def effective_settings(env: dict[str, str]) -> dict[str, Any]:
    """The hashing settings the server runs with, read the way it reads them."""
    from authapi.config import Settings

    with environment(env):
        settings = Settings(_env_file=None)
    return {
        "argon2_memory_cost_kib": settings.argon2_memory_cost,
        "argon2_time_cost": settings.argon2_time_cost,
        "argon2_parallelism": settings.argon2_parallelism,
        "hash_workers": settings.hash_workers,
        "hash_queue": settings.hash_queue,
        "database": "embedded SQLite" if settings.is_sqlite else "PostgreSQL",
    }


# --- the probe (its own process) -------------------------------------------------------

Sample = tuple[float, float, int]  # (start, latency, status); monotonic seconds, 0 = error


def probe_process(
    conn: Connection,
    base_url: str,
    token: str,
    concurrency: int,
    rate: float,
    stop: EventType,
    cpu: int | None,
) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    asyncio.run(_probe_main(conn, base_url, token, concurrency, rate, stop))


async def _probe_main(
    conn: Connection, base_url: str, token: str, concurrency: int, rate: float, stop: EventType
) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}"},
        limits=limits,
        timeout=httpx.Timeout(60),
    ) as client:
        # Open the connections (and warm the server's route) before anything is timed.
        for _ in range(3):
            await asyncio.gather(*(client.get("/whoami") for _ in range(concurrency)))
        conn.send("ready")
        while True:
            total = conn.recv()
            if total == "quit":
                return
            if total is None:
                conn.send("running")
            conn.send(await _probe_run(client, concurrency, rate, total, stop))


async def _probe_run(
    client: httpx.AsyncClient, concurrency: int, rate: float, total: int | None, stop: EventType
) -> list[Sample]:
    """`concurrency` loops of GET /whoami: `total` requests, or until `stop`.

    With a `rate` (requests per second, all loops together) each loop sends on a fixed
    schedule (staggered between loops), or at once when its previous answer came late;
    with rate 0 the loops send back to back, which keeps the server busy with the probe.
    """
    samples: list[Sample] = []
    issued = 0
    interval = concurrency / rate if rate > 0 else 0.0
    begin = time.monotonic()

    async def loop(number: int) -> None:
        nonlocal issued
        due = begin + interval * number / concurrency
        while True:
            if interval:
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)  # pacing, not synchronisation
                due = max(due + interval, time.monotonic())
            if stop.is_set() or (total is not None and issued >= total):
                return
            issued += 1
            start = time.monotonic()
            try:
                status = (await client.get("/whoami")).status_code
            except httpx.HTTPError:
                status = 0
            samples.append((start, time.monotonic() - start, status))

    await asyncio.gather(*(loop(number) for number in range(concurrency)))
    return samples


class Probe:
    def __init__(
        self,
        base_url: str,
        token: str,
        concurrency: int,
        rate: float,
        cpu: int | None,
        deadline: float,
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=probe_process,
            args=(child, base_url, token, concurrency, rate, self._stop, cpu),
            name="whoami-probe",
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
        if not self._conn.poll(deadline):
            raise RuntimeError(f"the probe did not answer within {deadline} s")
        return self._conn.recv()

    def _expect(self, message: str, deadline: float) -> None:
        got = self._receive(deadline)
        if got != message:
            raise RuntimeError(f"the probe said {got!r}, expected {message!r}")

    def measure(self, requests: int, deadline: float) -> list[Sample]:
        self._stop.clear()
        self._conn.send(requests)
        samples: list[Sample] = self._receive(deadline)
        return samples

    def start_continuous(self, deadline: float) -> None:
        self._stop.clear()
        self._conn.send(None)
        self._expect("running", deadline)

    def stop_continuous(self, deadline: float) -> list[Sample]:
        self._stop.set()
        samples: list[Sample] = self._receive(deadline)
        return samples

    def close(self) -> None:
        self._stop.set()  # ends a measurement under way, too
        with contextlib.suppress(OSError, ValueError):
            self._conn.send("quit")
        self._process.join(5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._conn.close()


def latency_figures(prefix: str, samples: Sequence[Sample]) -> dict[str, float]:
    latencies = [latency for _, latency, status in samples if status == 200]
    return {
        f"{prefix}_requests": len(samples),
        f"{prefix}_failed": sum(1 for _, _, status in samples if status != 200),
        f"{prefix}_p50_ms": ms(percentile(latencies, 50)),
        f"{prefix}_p99_ms": ms(percentile(latencies, 99)),
        f"{prefix}_max_ms": ms(max(latencies, default=float("nan"))),
    }


# --- the flood -------------------------------------------------------------------------


@dataclass
class Login:
    status: int  # 0: no answer (the error says why)
    latency: float
    end: float  # when the answer was in (monotonic)
    retry_after: str | None = None
    description: str | None = None
    error: str | None = None


@dataclass
class Flood:
    start: float
    end: float
    logins: list[Login]
    sent: list[float] = field(default_factory=list)  # when each request was fully written


def login_form(index: int) -> dict[str, str]:
    password = PASSWORD if index % 2 == 0 else WRONG_PASSWORD  # half right, half wrong
    return {"grant_type": "password", "username": EMAIL, "password": password}


def error_description(body: bytes) -> str | None:
    with contextlib.suppress(ValueError, AttributeError):
        return str(json.loads(body).get("error_description"))
    return None


async def flood_raw(host: str, port: int, count: int) -> Flood:
    """`count` logins at once, each on its own connection, as plain HTTP/1.1 over asyncio
    streams: cheap enough for the client to keep up with the server (an httpx pool of
    hundreds of connections costs more CPU than the server does; see `flood_httpx`)."""
    sent: list[float] = []
    requests = []
    for index in range(count):
        body = urlencode(login_form(index)).encode()
        head = (
            f"POST /token HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        requests.append(head.encode() + body)
    go = asyncio.Event()

    async def login(request: bytes) -> Login:
        await go.wait()
        start = time.monotonic()
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(120):
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(request)
                await writer.drain()
                sent.append(time.monotonic())
                status_line = await reader.readline()
                headers = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.read()  # Connection: close: the body runs to the end
            status = int(status_line.split()[1])
        except (OSError, TimeoutError, ValueError, IndexError) as exc:
            end = time.monotonic()
            return Login(0, end - start, end, error=type(exc).__name__)
        finally:
            if writer is not None:
                writer.close()
        end = time.monotonic()
        description = error_description(body) if status != 200 else None
        return Login(status, end - start, end, headers.get("retry-after"), description)

    tasks = [asyncio.create_task(login(request)) for request in requests]
    await asyncio.sleep(0)  # one turn of the loop: every task now waits for `go`
    start = time.monotonic()
    go.set()
    logins = await asyncio.gather(*tasks)
    end = time.monotonic()
    return Flood(start, end, list(logins), sent)


async def flood_httpx(base_url: str, count: int) -> Flood:
    """The same flood from one httpx.AsyncClient (max_connections=600). Its pool spends
    CPU on every connection for every response, so with hundreds of connections the
    client, not the server, sets the pace: answers are read seconds after the server
    sent them. Kept to show that (`--flood-client httpx`)."""
    sent: list[float] = []

    async def trace(event: str, _info: dict[str, Any]) -> None:
        if event == "http11.send_request_body.complete":
            sent.append(time.monotonic())

    limits = httpx.Limits(max_connections=600, max_keepalive_connections=600)
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=httpx.Timeout(120)
    ) as client:
        go = asyncio.Event()

        async def login(index: int) -> Login:
            form = login_form(index)
            await go.wait()
            start = time.monotonic()
            try:
                response = await client.post("/token", data=form, extensions={"trace": trace})
            except httpx.HTTPError as exc:
                end = time.monotonic()
                return Login(0, end - start, end, error=type(exc).__name__)
            end = time.monotonic()
            description = None
            if response.status_code != 200:
                description = error_description(response.content)
            return Login(
                response.status_code,
                end - start,
                end,
                response.headers.get("retry-after"),
                description,
            )

        tasks = [asyncio.create_task(login(index)) for index in range(count)]
        await asyncio.sleep(0)  # one turn of the loop: every task now waits for `go`
        start = time.monotonic()
        go.set()
        logins = await asyncio.gather(*tasks)
        end = time.monotonic()
    return Flood(start, end, list(logins), sent)


# --- one run ---------------------------------------------------------------------------


@dataclass
class RunResult:
    figures: dict[str, float]
    details: dict[str, Any]
    problems: list[str]


def register_and_login(base_url: str) -> str:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        created = client.post("/users", json={"email": EMAIL, "password": PASSWORD})
        if created.status_code != 201:
            raise RuntimeError(f"registration: {created.status_code} {created.text}")
        form = {"grant_type": "password", "username": EMAIL, "password": PASSWORD}
        token = client.post("/token", data=form)
        if token.status_code != 200:
            raise RuntimeError(f"login: {token.status_code} {token.text}")
        access_token: str = token.json()["access_token"]
        return access_token


def run_once(
    overrides: dict[str, str],
    postgres: str | None,
    hashing: dict[str, Any],
    pinning: Pinning,
    args: argparse.Namespace,
) -> RunResult:
    waited, busy_before = (0.0, float("nan"))
    if args.quiet_wait > 0:
        waited, busy_before = wait_for_quiet(QUIET_BUSY_SHARE, 1.0, args.quiet_wait)
    with postgres_database(postgres) as database:
        return _run_once({**overrides, **database}, hashing, pinning, args, waited, busy_before)


def _run_once(
    overrides: dict[str, str],
    hashing: dict[str, Any],
    pinning: Pinning,
    args: argparse.Namespace,
    waited: float,
    busy_before: float,
) -> RunResult:
    server = Server(overrides, pinning, args.nice)
    probe: Probe | None = None
    sampler: RssSampler | None = None
    try:
        server.wait_healthy(HEALTH_DEADLINE)
        startup_rss = status_kib(server.pid, "VmRSS")  # before any password was hashed
        token = register_and_login(server.base_url)
        sampler = RssSampler(server.pid)
        sampler.start()
        probe = Probe(
            server.base_url,
            token,
            args.concurrency,
            args.probe_rate,
            pinning.client_cpu,
            deadline=30,
        )

        jiffies_idle = cpu_jiffies()
        cpu_idle = cpu_seconds(server.pid)
        loop_at_start = event_loop_stats(server.pid)
        idle_start = time.monotonic()
        idle = probe.measure(args.idle_requests, deadline=300)
        idle_wall = time.monotonic() - idle_start
        loop_before = event_loop_stats(server.pid)
        idle_rss = status_kib(server.pid, "VmRSS")
        idle_threads = status_kib(server.pid, "Threads")
        hwm_before = status_kib(server.pid, "VmHWM")
        cpu_before = cpu_seconds(server.pid)
        jiffies_before = cpu_jiffies()

        probe.start_continuous(deadline=30)
        client_before = own_cpu_seconds()
        if args.flood_client == "httpx":
            result = asyncio.run(flood_httpx(server.base_url, args.logins))
        else:
            result = asyncio.run(flood_raw("127.0.0.1", server.port, args.logins))
        client_cpu = own_cpu_seconds() - client_before
        during = probe.stop_continuous(deadline=120)

        cpu_flood = cpu_seconds(server.pid) - cpu_before
        loop_after = event_loop_stats(server.pid)
        jiffies_after = cpu_jiffies()
        hwm_after = status_kib(server.pid, "VmHWM")
        rss_after = status_kib(server.pid, "VmRSS")
        sampler.stop()
        peak_rss = max(sampler.peak(result.start, result.end), rss_after)
    except BaseException:
        say(f"server log (last lines):\n{server.log_tail()}")
        raise
    finally:
        if probe is not None:
            probe.close()
        if sampler is not None:
            sampler.stop()
        server.stop()

    in_flood = [s for s in during if result.start <= s[0] <= result.end]
    # The burst: until the last refusal went out (or, with none, the last login was sent);
    # after it, the server only hashes the logins it admitted.
    burst_end = max(
        (x.end for x in result.logins if x.status == 503),
        default=max(result.sent, default=result.start),
    )
    in_burst = [s for s in in_flood if s[0] <= burst_end]
    after_burst = [s for s in in_flood if s[0] > burst_end]
    statuses = Counter(str(login.status) for login in result.logins)
    no_retry_after = sum(1 for x in result.logins if x.status == 503 and not x.retry_after)
    reasons = Counter(x.description for x in result.logins if x.status == 503)
    errors = Counter(x.error for x in result.logins if x.error)
    wall = result.end - result.start
    hashed = statuses["200"] + statuses["400"]  # each took one argon2id verification
    answered = [x.latency for x in result.logins if x.status in (200, 400)]
    refused = [x.latency for x in result.logins if x.status == 503]

    # The bound to document: what the process holds before any login, plus one argon2id
    # memory cost per hashing thread, plus a margin for sockets and allocator slack.
    bound = startup_rss + hashing["hash_workers"] * hashing["argon2_memory_cost_kib"]
    bound += MEMORY_MARGIN_MIB * 1024
    loop_idle = usage(loop_at_start, loop_before)
    loop_flood = usage(loop_before, loop_after)
    figures: dict[str, float] = {
        **latency_figures("idle_whoami", idle),
        **latency_figures("flood_whoami", in_flood),
        **latency_figures("burst_whoami", in_burst),
        **latency_figures("after_burst_whoami", after_burst),
    }
    figures["flood_whoami_p99_over_idle_p99"] = round(
        figures["flood_whoami_p99_ms"] / figures["idle_whoami_p99_ms"], 2
    )
    figures.update(
        {
            "logins": len(result.logins),
            "logins_200": statuses["200"],
            "logins_400": statuses["400"],
            "logins_503": statuses["503"],
            "logins_other": len(result.logins)
            - statuses["200"]
            - statuses["400"]
            - statuses["503"],
            "logins_503_without_retry_after": no_retry_after,
            "logins_503_hasher_busy": sum(
                n for reason, n in reasons.items() if reason and reason.startswith("Too many")
            ),
            "logins_503_database": sum(
                n for reason, n in reasons.items() if reason and "database" in reason
            ),
            "flood_wall_s": round(wall, 3),
            "burst_s": round(burst_end - result.start, 3),
            "flood_last_request_sent_s": round(
                max(result.sent, default=result.start) - result.start, 3
            ),
            "logins_verified_per_s": round(hashed / wall, 1),
            "login_verified_p50_ms": ms(percentile(answered, 50)),
            "login_verified_p99_ms": ms(percentile(answered, 99)),
            "login_503_p50_ms": ms(percentile(refused, 50)),
            "login_503_p99_ms": ms(percentile(refused, 99)),
            "server_cpu_s_during_flood": round(cpu_flood, 2),
            "client_cpu_s_during_flood": round(client_cpu, 2),
            "foreign_cpu_share_idle": round(
                foreign_share(
                    pinning.server_cpu, jiffies_idle, jiffies_before, cpu_before - cpu_idle
                ),
                3,
            ),
            "foreign_cpu_share_flood": round(
                foreign_share(pinning.server_cpu, jiffies_before, jiffies_after, cpu_flood), 3
            ),
            "event_loop_cpu_share_idle": round(loop_idle[0] / idle_wall, 3),
            "event_loop_wait_share_idle": round(loop_idle[1] / idle_wall, 3),
            "event_loop_cpu_share_flood": round(loop_flood[0] / wall, 3),
            "event_loop_wait_share_flood": round(loop_flood[1] / wall, 3),
            "other_threads_cpu_s_flood": round(cpu_flood - loop_flood[0], 2),
            "machine_busy_share_before_run": round(busy_before, 3),
            "quiet_wait_s": round(waited, 1),
            "startup_rss_mib": mib(startup_rss),
            "idle_rss_mib": mib(idle_rss),
            "flood_peak_rss_mib": mib(peak_rss),
            "flood_rss_increase_mib": mib(peak_rss - idle_rss),
            "rss_after_flood_mib": mib(rss_after),
            "vmhwm_before_flood_mib": mib(hwm_before),
            "vmhwm_after_flood_mib": mib(hwm_after),
            "vmhwm_increase_mib": mib(hwm_after - hwm_before),
            "peak_over_startup_mib": mib(max(peak_rss, hwm_after) - startup_rss),
            "memory_bound_mib": mib(bound),
            "peak_within_memory_bound": int(max(peak_rss, hwm_after) <= bound),
            "idle_threads": idle_threads,
            "flood_peak_threads": sampler.peak_threads(result.start, result.end),
            "rss_samples_during_flood": sum(
                1 for at, _ in sampler.samples if result.start <= at <= result.end
            ),
        }
    )
    problems = []
    if figures["logins_other"]:
        problems.append(f"logins answered outside 200/400/503: {dict(statuses)} {dict(errors)}")
    if no_retry_after:
        problems.append(f"{no_retry_after} logins answered 503 without Retry-After")
    if figures["idle_whoami_failed"] or figures["flood_whoami_failed"]:
        problems.append("some /whoami probe requests failed")
    details = {
        "login_statuses": dict(sorted(statuses.items())),
        "login_503_reasons": dict(reasons),
        "login_errors": dict(errors),
        "server_command": server.command,
    }
    return RunResult(figures, details, problems)


# --- reports ---------------------------------------------------------------------------


def medians(runs: Sequence[RunResult]) -> dict[str, float]:
    keys = runs[0].figures.keys()
    return {key: round(statistics.median(run.figures[key] for run in runs), 2) for key in keys}


def source_version() -> dict[str, Any]:
    """The commit measured, and which files under src/ differed from it (others may be
    editing the working tree while the benchmark runs)."""
    root = BENCH_DIR.parent

    def git(*args: str) -> str:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            return subprocess.run(  # noqa: S603 - fixed arguments
                ["git", *args],  # noqa: S607 - git from PATH
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
                timeout=10,
            ).stdout.rstrip("\n")
        return ""

    changed = git("status", "--porcelain", "--", "src", "migrations", "pyproject.toml")
    return {
        "commit": git("rev-parse", "HEAD") or "unknown",
        "uncommitted_changes": [line[3:] for line in changed.splitlines()],
    }


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": versions(PACKAGES),
        "client_packages": versions(CLIENT_PACKAGES),
    }


def benchmark_config(args: argparse.Namespace, pinning: Pinning) -> dict[str, Any]:
    return {
        "logins": args.logins,
        "logins_with_wrong_password": args.logins // 2,
        "probe": "GET /whoami"
        + (f" at {args.probe_rate:g} requests/s in all" if args.probe_rate else " back to back"),
        "probe_concurrency": args.concurrency,
        "probe_rate_per_s": args.probe_rate,
        "idle_probe_requests": args.idle_requests,
        "runs": args.runs,
        "nice": args.nice,
        "server_cpu": pinning.server_cpu,
        "client_cpu": pinning.client_cpu,
        "flood_client": (
            "httpx.AsyncClient, max_connections=600"
            if args.flood_client == "httpx"
            else "asyncio streams, one connection per login (HTTP/1.1, Connection: close)"
        ),
        "probe_client": "httpx.AsyncClient in a process of its own",
    }


def run_config(config: Config, args: argparse.Namespace, pinning: Pinning) -> dict[str, Any]:
    label, overrides = config.label, config.env
    if args.source is not None:  # another checkout's code, ahead of the installed one
        overrides = {"PYTHONPATH": str(Path(args.source).resolve() / "src"), **overrides}
    postgres = args.postgres if config.postgres else None
    database = {"AUTHAPI_DATABASE_URL": "<fresh PostgreSQL database>"} if postgres else {}
    settings = effective_settings(server_environment(Path("/nonexistent"), overrides | database))
    say(f"== {label}: {json.dumps(settings)}")
    runs = []
    for number in range(1, args.runs + 1):
        run = run_once(overrides, postgres, settings, pinning, args)
        runs.append(run)
        f = run.figures
        say(
            f"   run {number}: /whoami p99 idle {f['idle_whoami_p99_ms']} ms, "
            f"flood {f['flood_whoami_p99_ms']} ms (x{f['flood_whoami_p99_over_idle_p99']}); "
            f"logins 200/400/503 = {f['logins_200']:.0f}/{f['logins_400']:.0f}/"
            f"{f['logins_503']:.0f} in {f['flood_wall_s']} s; "
            f"RSS {f['idle_rss_mib']} -> {f['flood_peak_rss_mib']} MiB"
        )
        for problem in run.problems:
            say(f"   PROBLEM: {problem}")
    return {
        "label": label,
        "environment": {
            "AUTHAPI_RATE_LIMIT_ENABLED": "false",
            "AUTHAPI_DATA_DIR": "<fresh temporary directory>",
            **database,
            **overrides,
        },
        "settings": settings,
        "median": medians(runs),
        "runs": [run.figures for run in runs],
        "run_details": [run.details for run in runs],
        "problems": [problem for run in runs for problem in run.problems],
    }


SUMMARY_FIGURES = (
    ("/whoami p50 idle (ms)", "idle_whoami_p50_ms"),
    ("/whoami p99 idle (ms)", "idle_whoami_p99_ms"),
    ("/whoami p50 during flood (ms)", "flood_whoami_p50_ms"),
    ("/whoami p99 during flood (ms)", "flood_whoami_p99_ms"),
    ("/whoami p99 flood / idle", "flood_whoami_p99_over_idle_p99"),
    ("/whoami max during flood (ms)", "flood_whoami_max_ms"),
    ("/whoami requests during flood", "flood_whoami_requests"),
    ("burst: until the last 503 was answered (s)", "burst_s"),
    ("/whoami p99 during the burst (ms)", "burst_whoami_p99_ms"),
    ("/whoami requests during the burst", "burst_whoami_requests"),
    ("/whoami p99 after the burst, while hashing (ms)", "after_burst_whoami_p99_ms"),
    ("/whoami requests after the burst", "after_burst_whoami_requests"),
    ("logins 200 (right password)", "logins_200"),
    ("logins 400 (wrong password)", "logins_400"),
    ("logins 503 (busy, Retry-After)", "logins_503"),
    ("  of which: hasher full", "logins_503_hasher_busy"),
    ("  of which: database unavailable (timeout)", "logins_503_database"),
    ("503 without Retry-After", "logins_503_without_retry_after"),
    ("flood wall time (s)", "flood_wall_s"),
    ("last login sent after (s)", "flood_last_request_sent_s"),
    ("verified logins per s", "logins_verified_per_s"),
    ("verified login p99 (ms)", "login_verified_p99_ms"),
    ("503 answer p99 (ms)", "login_503_p99_ms"),
    ("server CPU during flood (s)", "server_cpu_s_during_flood"),
    ("flood client CPU during flood (s)", "client_cpu_s_during_flood"),
    ("event loop: CPU share, idle", "event_loop_cpu_share_idle"),
    ("event loop: share waiting for the CPU, idle", "event_loop_wait_share_idle"),
    ("event loop: CPU share, flood", "event_loop_cpu_share_flood"),
    ("event loop: share waiting for the CPU, flood", "event_loop_wait_share_flood"),
    ("other threads (hashing, aiosqlite): CPU during flood (s)", "other_threads_cpu_s_flood"),
    ("other processes' share of server CPU, idle", "foreign_cpu_share_idle"),
    ("other processes' share of server CPU, flood", "foreign_cpu_share_flood"),
    ("RSS at startup, before any hash (MiB)", "startup_rss_mib"),
    ("RSS idle, after 2 hashes and the idle probe (MiB)", "idle_rss_mib"),
    ("RSS peak during flood (MiB)", "flood_peak_rss_mib"),
    ("RSS increase (MiB)", "flood_rss_increase_mib"),
    ("VmHWM after flood (MiB)", "vmhwm_after_flood_mib"),
    ("RSS after flood (MiB)", "rss_after_flood_mib"),
    ("peak (RSS or VmHWM) over startup (MiB)", "peak_over_startup_mib"),
    ("bound: startup + workers x m + margin (MiB)", "memory_bound_mib"),
    ("peak within the bound (1 = yes)", "peak_within_memory_bound"),
    ("server threads idle", "idle_threads"),
    ("server threads, peak during flood", "flood_peak_threads"),
)


COMPARISON = (
    ("/whoami p99 idle (ms)", "idle_whoami_p99_ms"),
    ("/whoami p99 flood (ms)", "flood_whoami_p99_ms"),
    ("flood / idle", "flood_whoami_p99_over_idle_p99"),
    ("p99 burst (ms)", "burst_whoami_p99_ms"),
    ("p99 after burst (ms)", "after_burst_whoami_p99_ms"),
    ("flood (s)", "flood_wall_s"),
    ("verified logins/s", "logins_verified_per_s"),
    ("200+400", "verified"),
    ("503 hasher full", "logins_503_hasher_busy"),
    ("503 database", "logins_503_database"),
    ("503 p50 (ms)", "login_503_p50_ms"),
    ("RSS increase (MiB)", "flood_rss_increase_mib"),
    ("within memory bound", "peak_within_memory_bound"),
    ("peak threads", "flood_peak_threads"),
    ("others' CPU share", "foreign_cpu_share_flood"),
)


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Login flood benchmark",
        "",
        f"{report['date']} — `{report['command']}`",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), Linux {m['kernel']}, "
        f"Python {m['python']}, "
        + ", ".join(f"{name} {version}" for name, version in m["packages"].items())
        + ".",
        "",
        "Load: {logins} concurrent `POST /token` password grants (half with a wrong "
        "password) while {probe_concurrency} loops probe `{probe}`; "
        "server on CPU {server_cpu}, load generator on CPU {client_cpu}; "
        "rate limits off; nice {nice}; {runs} run(s) per configuration, each on a fresh "
        "server and database. Figures are medians of the runs."
        "".format(**report["benchmark"]),
        "",
        "Code measured: "
        + (
            f"`{report['source']['path']}`"
            if "path" in report["source"]
            else f"commit {report['source']['commit'][:10]}"
            + (
                " with uncommitted changes to "
                + ", ".join(f"`{name}`" for name in report["source"]["uncommitted_changes"])
                if report["source"]["uncommitted_changes"]
                else ""
            )
        )
        + (
            " (the working tree changed during the run)"
            if "source_changed_during_run" in report
            else ""
        )
        + ".",
        "",
        f"Reference (the issue): {report['reference']['app']}: p99 "
        f"{report['reference']['idle_p99_ms']} ms idle, "
        f"{report['reference']['flood_p99_ms']} ms during a login flood.",
    ]
    configs = report["configurations"]
    if len(configs) > 1:
        lines += [
            "",
            "| configuration | " + " | ".join(title for title, _ in COMPARISON) + " |",
            "|---|" + "---:|" * len(COMPARISON),
        ]
        for config in configs:
            median = dict(config["median"])
            median["verified"] = median["logins_200"] + median["logins_400"]
            cells = " | ".join(f"{median[key]:g}" for _, key in COMPARISON)
            lines.append(f"| {config['label']} | {cells} |")
    for config in configs:
        s = config["settings"]
        runs = config["runs"]
        lines += [
            "",
            f"## {config['label']}",
            "",
            f"{s['database']}; argon2id m={s['argon2_memory_cost_kib']} KiB, "
            f"t={s['argon2_time_cost']}, p={s['argon2_parallelism']}; "
            f"hash_workers={s['hash_workers']}, hash_queue={s['hash_queue']}.",
            "",
            "| figure | median | " + " | ".join(f"run {i}" for i in range(1, len(runs) + 1)) + " |",
            "|---|---:|" + "---:|" * len(runs),
        ]
        for title, key in SUMMARY_FIGURES:
            values = " | ".join(f"{run[key]:g}" for run in runs)
            lines.append(f"| {title} | {config['median'][key]:g} | {values} |")
        if config["problems"]:
            lines += ["", "Problems: " + "; ".join(config["problems"])]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke run: small and fast")
    parser.add_argument("--sweep", action="store_true", help="compare hashing settings")
    parser.add_argument("--output", type=Path, help="JSON file to write (and .md beside it)")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="server environment, e.g. AUTHAPI_HASH_WORKERS=1 (repeatable)",
    )
    parser.add_argument(
        "--source",
        metavar="DIR",
        help="run the server from this checkout's src/ (PYTHONPATH) instead of the "
        "installed package, e.g. an older commit: git archive REV | tar -x -C DIR",
    )
    parser.add_argument(
        "--postgres",
        metavar="ADMIN_URL",
        help="use PostgreSQL instead of the embedded SQLite: a fresh database on this "
        "server per run, e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
    )
    parser.add_argument("--logins", type=int, help="concurrent logins (500; quick 50)")
    parser.add_argument("--idle-requests", type=int, help="idle probe requests (2000; quick 200)")
    parser.add_argument("--concurrency", type=int, default=4, help="probe loops (4)")
    parser.add_argument(
        "--flood-client",
        choices=("raw", "httpx"),
        default="raw",
        help="how the logins are sent: asyncio streams, a connection each (raw), or one "
        "httpx.AsyncClient, which cannot keep up with hundreds of connections (raw)",
    )
    parser.add_argument(
        "--probe-rate",
        type=float,
        default=DEFAULT_PROBE_RATE,
        help=f"probe requests per second, all loops together; 0: back to back "
        f"({DEFAULT_PROBE_RATE:g})",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="scheduling priority of the server, probe and load generator, e.g. -10 on a "
        "machine shared with other work (needs root); recorded with the results (0)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        help="before each run, wait up to this many seconds for the machine to be less "
        "than 25%% busy (10; quick 0)",
    )
    parser.add_argument("--runs", type=int, help="runs per configuration (3; quick 1)")
    args = parser.parse_args(argv)
    args.logins = args.logins or (50 if args.quick else 500)
    args.idle_requests = args.idle_requests or (200 if args.quick else 2000)
    args.runs = args.runs or (1 if args.quick else 3)
    if args.quiet_wait is None:
        args.quiet_wait = 0.0 if args.quick else 10.0
    for item in args.env:
        if "=" not in item:
            parser.error(f"--env wants KEY=VALUE, got {item!r}")
    return args


def default_output(args: argparse.Namespace) -> Path:
    if args.output is not None:
        return Path(args.output)
    if args.quick:
        return Path(tempfile.mkdtemp(prefix="login-flood-")) / "login_flood.json"
    return RESULTS_DIR / ("login_flood_sweep.json" if args.sweep else "login_flood.json")


def without_nan(value: Any) -> Any:
    """NaN (a figure with no samples) as null, so that the JSON is strict JSON."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {key: without_nan(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [without_nan(item) for item in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def terminated(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)  # so that `finally` stops the server

    signal.signal(signal.SIGTERM, terminated)
    if args.nice and not set_priority(args.nice):
        say(f"login_flood: could not set nice {args.nice}; running at normal priority")
        args.nice = 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.logins + 256  # a socket per login here, and as many in the server
    if soft != resource.RLIM_INFINITY and soft < wanted:
        limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    pinning = Pinning.choose()
    if pinning.client_cpu is not None:
        os.sched_setaffinity(0, {pinning.client_cpu})
    overrides = dict(item.split("=", 1) for item in args.env)
    if args.sweep:
        configs = [
            Config(c.label, c.env | overrides, c.postgres)
            for c in SWEEP
            if args.postgres or not c.postgres
        ]
    else:
        database = "PostgreSQL" if args.postgres else "SQLite"
        label = f"{database}, " + (", ".join(args.env) if args.env else "defaults")
        configs = [Config(label, overrides, postgres=args.postgres is not None)]
    started = time.monotonic()
    report: dict[str, Any] = {
        "benchmark": benchmark_config(args, pinning),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "mode": "quick" if args.quick else "full",
        "machine": machine(),
        "source": ({"path": str(Path(args.source).resolve())} if args.source else source_version()),
        "defaults": effective_settings(server_environment(Path("/nonexistent"), {})),
        "reference": REFERENCE,
        "configurations": [run_config(config, args, pinning) for config in configs],
    }
    report["duration_s"] = round(time.monotonic() - started, 1)
    if not args.source and source_version() != report["source"]:
        report["source_changed_during_run"] = source_version()

    output = default_output(args)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(without_nan(report), indent=2, allow_nan=False) + "\n")
    output.with_suffix(".md").write_text(markdown(report))
    say()
    say(markdown(report))
    say(f"written: {output} and {output.with_suffix('.md')} ({report['duration_s']} s)")
    problems = [p for config in report["configurations"] for p in config["problems"]]
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
