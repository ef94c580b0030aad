"""Scale of data: refresh latency with 1,000,000 sessions in the table against 10,000
(quick: 20,000 against 2,000). Two databases filled in bulk (`generate_series`, every
column of `sessions` set), a server on each, and one client refreshing sessions drawn
at random from the whole table - their tokens computed with the servers' refresh-token
secret - so that every request reads and writes a random place of the table and its
indexes. Runs alternate between the two. Target (issue 6): p50 ratio <= 1.2."""

from __future__ import annotations

import random
import time

import uvloop

from authapi.sessions.rotation import RefreshTokenCodec
from authbench import accounts, postgres, refreshing, servers
from authbench.config import BenchConfig
from authbench.httpload import Connection, LoadResult, closed_loop
from authbench.results import Figure, ScenarioResult, Target

SLICE = 2.0  # seconds of one size before the other's turn
SMALL_DB = "authapi_bench_scale_small"
LARGE_DB = "authapi_bench_scale_large"


def describe(config: BenchConfig) -> ScenarioResult:
    small, large = f"{config.scale_small:,}", f"{config.scale_large:,}"
    return ScenarioResult(
        name="scale",
        title="Scale of data",
        what=(
            f"`POST /refresh` latency, one client, sessions drawn at random from a table "
            f"of {large} vs {small} active sessions (PostgreSQL, "
            f"{config.driver_seconds:g} s per run and size, in slices of {SLICE:g} s "
            "taken in turn)."
        ),
        figures=[
            Figure("small_p50_ms", f"p50, {small} sessions", " ms"),
            Figure("large_p50_ms", f"p50, {large} sessions", " ms"),
            Figure("ratio_p50", "p50 ratio large ÷ small"),
            Figure("small_p99_ms", f"p99, {small} sessions", " ms"),
            Figure("large_p99_ms", f"p99, {large} sessions", " ms"),
            Figure("ratio_p99", "p99 ratio large ÷ small"),
            Figure("fill_large_s", f"bulk insert of {large} sessions", " s"),
        ],
        targets=[Target("ratio_p50", "<=", 1.2)],
    )


class RandomSessions:
    """Refreshes a random bulk session per request, tracking each one's generation."""

    def __init__(self, base_url: str, size: int, codec: RefreshTokenCodec, seed: int) -> None:
        self.connection = Connection(*refreshing.address(base_url))
        self.size = size
        self.codec = codec
        self.random = random.Random(seed)
        self.generations: dict[int, int] = {}

    async def step(self) -> None:
        number = self.random.randint(1, self.size)
        session_id = postgres.row_id("session", number)
        token = self.codec.encode(session_id, self.generations.get(number, 0))
        new = self.codec.decode(await refreshing.refresh(self.connection, token))
        if new is None or new.session_id != session_id:
            raise RuntimeError("the refresh answered another session's token")
        self.generations[number] = new.generation


def run_one(client: RandomSessions, warmup: float, seconds: float) -> LoadResult:
    async def run() -> LoadResult:
        try:
            return await closed_loop([client.step], warmup, seconds)
        finally:
            await client.connection.close()

    return uvloop.run(run())


def fill(database: str, size: int) -> float:
    started = time.monotonic()
    postgres.fill_users(database)
    postgres.fill_sessions(database, 1, size, expired=False)
    return time.monotonic() - started


def measure(config: BenchConfig, result: ScenarioResult) -> None:
    try:
        _measure(config, result)
    finally:
        postgres.drop_database(SMALL_DB)
        postgres.drop_database(LARGE_DB)


def _measure(config: BenchConfig, result: ScenarioResult) -> None:
    small = servers.authapi(config, "scale-small", postgres.create_database(SMALL_DB))
    with servers.running(small):
        large = servers.authapi(config, "scale-large", postgres.create_database(LARGE_DB))
        with servers.running(large):
            fill(SMALL_DB, config.scale_small)
            fill_large = fill(LARGE_DB, config.scale_large)
            result.commands += [small.shown(), large.shown()]
            codec = accounts.refresh_codec()
            clients = {
                "small": RandomSessions(small.base_url, config.scale_small, codec, 1),
                "large": RandomSessions(large.base_url, config.scale_large, codec, 2),
            }
            for _ in range(config.runs):
                figures: dict[str, float] = {"fill_large_s": round(fill_large, 1)}
                # Slices taken in turn, so that the rest of the machine weighs on both.
                latencies: dict[str, list[float]] = {size: [] for size in clients}
                for number in range(max(1, round(config.driver_seconds / SLICE))):
                    warmup = config.warmup_seconds if number == 0 else 0.2
                    for size, client in clients.items():
                        latencies[size] += run_one(client, warmup, SLICE).latencies
                for size, values in latencies.items():
                    load = LoadResult(config.driver_seconds, values)
                    figures[f"{size}_p50_ms"] = round(load.ms(50), 2)
                    figures[f"{size}_p99_ms"] = round(load.ms(99), 2)
                figures["ratio_p50"] = round(figures["large_p50_ms"] / figures["small_p50_ms"], 3)
                figures["ratio_p99"] = round(figures["large_p99_ms"] / figures["small_p99_ms"], 3)
                result.runs.append(figures)
    result.commands.append(
        "(driver) authbench/scenarios/scale.py: 1 keep-alive connection, POST /refresh "
        f"of a random bulk session, on CPU {config.client_cpu}"
    )
    result.notes.append(
        f"Bulk rows: {postgres.FILLER_USERS:,} users; sessions with md5-derived ids, "
        "generation 0, expiring 1 h to 14 days ahead, then ANALYZE. shared_buffers "
        "holds the small table, not the large one (see Machine)."
    )
