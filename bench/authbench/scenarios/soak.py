"""Soak: the server's memory over a long run of short-lived tokens (issue 16).

Clients log in, then refresh and call `/whoami` and `/users/me` with each new access
token, and log in again every few rounds, at a steady pace, against a server whose
access tokens live 5 s: every token and every session's profile enters the server's
caches and expires there many times over. The server's RSS is sampled every few
seconds. Before entries expired by time, the caches grew until they held 10,000
entries each (RSS +9-11 MiB in 3 minutes, linearly); now they hold one token
lifetime's worth, and the RSS levels off. Memory, not speed, is the figure: the pace
is fixed and low, so the machine's other work does not change what it shows.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

import uvloop

from authbench import accounts, servers
from authbench.config import BenchConfig
from authbench.httpload import Connection, HttpError
from authbench.procfs import status_kib
from authbench.refreshing import JSON, address
from authbench.results import Figure, ScenarioResult

EMAIL = "soak@example.com"
ACCESS_TOKEN_TTL = 5  # s: entries expire within seconds, so ~100 times over in 10 min
ROUNDS_PER_SESSION = 20  # refresh + /whoami + /users/me, then log out and in again
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass(frozen=True)
class Pace:
    clients: int
    rounds_per_s: float  # all clients together
    seconds: float
    sample_every: float  # s between RSS samples

    @property
    def window(self) -> float:
        """The span averaged for "first" and "last": a minute of the full soak."""
        return self.seconds / 10


def pace(config: BenchConfig) -> Pace:
    if config.quick:
        return Pace(clients=2, rounds_per_s=20, seconds=8, sample_every=0.5)
    return Pace(clients=8, rounds_per_s=50, seconds=600, sample_every=5)


def describe(config: BenchConfig) -> ScenarioResult:
    p = pace(config)
    return ScenarioResult(
        name="soak",
        title="Soak (memory)",
        what=(
            f"{p.clients} clients, {p.rounds_per_s:g} rounds/s in all for {p.seconds:g} s: "
            f"a round is `POST /refresh`, then `GET /whoami` and `GET /users/me` with the "
            f"new access token; every {ROUNDS_PER_SESSION} rounds a client logs out and "
            f"logs in again (a new session). `AUTHAPI_ACCESS_TOKEN_TTL={ACCESS_TOKEN_TTL}`, "
            f"embedded SQLite. The server's RSS (VmRSS) every {p.sample_every:g} s; "
            f"first and last windows are {p.window:g} s each."
        ),
        figures=[
            Figure("rss_first_mib", "RSS, mean of the first window", " MiB"),
            Figure("rss_second_mib", "RSS, mean of the second window", " MiB"),
            Figure("rss_last_mib", "RSS, mean of the last window", " MiB"),
            Figure("rss_growth_mib", "RSS growth, second window to last", " MiB"),
            Figure("rss_peak_mib", "RSS, highest sample", " MiB"),
            Figure("logins", "logins"),
            Figure("refreshes", "refreshes (each a new access token)"),
            Figure("requests_per_s", "requests", "/s"),
            Figure("failures", "answers other than 2xx"),
        ],
    )


@dataclass
class Counts:
    logins: int = 0
    refreshes: int = 0
    requests: int = 0
    failures: int = 0
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # s, MiB, requests


class SoakClient:
    """One client: sessions one after another, rounds at its share of the pace."""

    def __init__(self, base_url: str, counts: Counts) -> None:
        self.connection = Connection(*address(base_url))
        self.counts = counts

    async def _call(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> dict[str, str]:
        status, answer = await self.connection.request(method, path, body, headers)
        self.counts.requests += 1
        if status >= 300:
            self.counts.failures += 1
            raise HttpError(f"{method} {path}: {status} {answer[:200]!r}")
        parsed: dict[str, str] = json.loads(answer) if answer else {}
        return parsed

    async def _login(self) -> dict[str, str]:
        form = {"grant_type": "password", "username": EMAIL, "password": accounts.PASSWORD}
        tokens = await self._call("POST", "/token", urlencode(form).encode(), FORM)
        self.counts.logins += 1
        return tokens

    async def _round(self, tokens: dict[str, str]) -> dict[str, str]:
        body = json.dumps({"refresh_token": tokens["refresh_token"]}).encode()
        tokens = await self._call("POST", "/refresh", body, JSON)
        self.counts.refreshes += 1
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        await self._call("GET", "/whoami", b"", bearer)
        await self._call("GET", "/users/me", b"", bearer)
        return tokens

    async def run(self, interval: float, start: float, end: float) -> None:
        due = start
        try:
            while time.monotonic() < end:
                try:
                    due += interval  # a login takes a round's place
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    tokens = await self._login()
                    for _ in range(ROUNDS_PER_SESSION):
                        due += interval
                        await asyncio.sleep(max(0.0, due - time.monotonic()))
                        if time.monotonic() >= end:
                            break
                        tokens = await self._round(tokens)
                    body = json.dumps({"refresh_token": tokens["refresh_token"]}).encode()
                    await self._call("POST", "/logout", body, JSON)
                except HttpError:
                    continue  # counted; a new session
        finally:
            await self.connection.close()


async def sample(pid: int, counts: Counts, p: Pace, start: float, end: float) -> None:
    while (now := time.monotonic()) < end:
        counts.samples.append((now - start, status_kib(pid, "VmRSS") / 1024, counts.requests))
        await asyncio.sleep(p.sample_every)


async def soak(base_url: str, pid: int, p: Pace) -> Counts:
    counts = Counts()
    start = time.monotonic()
    end = start + p.seconds
    interval = p.clients / p.rounds_per_s  # each client's rounds, evenly spread
    clients = [SoakClient(base_url, counts) for _ in range(p.clients)]
    await asyncio.gather(
        sample(pid, counts, p, start, end),
        *(
            client.run(interval, start + number * interval / p.clients, end)
            for number, client in enumerate(clients)
        ),
    )
    return counts


def mean_rss(counts: Counts, since: float, until: float) -> float:
    values = [rss for at, rss, _ in counts.samples if since <= at < until]
    return round(statistics.mean(values), 1) if values else float("nan")


def measure(config: BenchConfig, result: ScenarioResult) -> None:
    p = pace(config)
    server = servers.authapi(config, "soak", None, AUTHAPI_ACCESS_TOKEN_TTL=str(ACCESS_TOKEN_TTL))
    with servers.running(server):
        accounts.register(server.base_url, EMAIL)
        counts = uvloop.run(soak(server.base_url, server.pid, p))
    result.commands.append(server.shown())
    last = p.seconds - p.window
    result.runs.append(
        {
            "rss_first_mib": mean_rss(counts, 0, p.window),
            "rss_second_mib": mean_rss(counts, p.window, 2 * p.window),
            "rss_last_mib": mean_rss(counts, last, p.seconds),
            "rss_growth_mib": round(
                mean_rss(counts, last, p.seconds) - mean_rss(counts, p.window, 2 * p.window), 1
            ),
            "rss_peak_mib": round(max(rss for _, rss, _ in counts.samples), 1),
            "logins": counts.logins,
            "refreshes": counts.refreshes,
            "requests_per_s": round(counts.requests / p.seconds, 1),
            "failures": counts.failures,
        }
    )
    result.notes.append(
        "RSS over time, a row per window (its mean, its last sample):\n" + rss_table(counts, p)
    )
    if counts.failures:
        raise RuntimeError(f"{counts.failures} answers other than 2xx; see {server.log_path}")


def rss_table(counts: Counts, p: Pace) -> str:
    rows = [
        "",
        "| from s | to s | mean RSS (MiB) | last sample (MiB) | requests by then |",
        "|---:|---:|---:|---:|---:|",
    ]
    for index in range(10):
        since, until = index * p.window, (index + 1) * p.window
        inside = [sample for sample in counts.samples if since <= sample[0] < until]
        if inside:
            rows.append(
                f"| {since:g} | {until:g} | {mean_rss(counts, since, until):.1f} "
                f"| {inside[-1][1]:.1f} | {inside[-1][2]:,} |"
            )
    return "\n".join(rows)
