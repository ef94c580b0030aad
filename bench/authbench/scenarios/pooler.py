"""Refreshes through PgBouncer in transaction mode next to a direct connection (issue
15, point 6): the refresh scenario's load (32 clients, quick: 8, each refreshing its
own session with the newest token) against authapi servers on one database, taken in
slices in turn:

- `direct`: the database URL names PostgreSQL;
- `pooled`: it names PgBouncer (authbench/pgbouncer.py, transaction mode, 20 server
  connections), with `AUTHAPI_DATABASE_POOLER=transaction` as docs/operations.md says,
  the revocation listener on PostgreSQL itself;
- full mode only, `direct_tx`: PostgreSQL directly but with
  `AUTHAPI_DATABASE_POOLER=transaction`, which separates what the setting costs (no
  statement cache, a statement prepared anew each time) from the hop through PgBouncer.

Beside refreshes/s and latencies: the share of refreshes the one-statement path
answered (`authapi_one_statement_refreshes_total{outcome="advanced"}` ÷
`authapi_refreshes_total`, from each server's /metrics), and how many PostgreSQL
sessions were opened meanwhile (`pg_stat_database.sessions` of the database): a pool
that opens and closes overflow connections under the load shows there."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from authbench import pgbouncer, postgres, servers, slicing
from authbench.config import ADMIN_DSN, BenchConfig
from authbench.results import Figure, ScenarioResult

DATABASE = "authapi_bench_pooler"
SERVER_CONNECTIONS = 20  # PgBouncer's default_pool_size: what ten instances would share
ONE_STATEMENT = "authapi_one_statement_refreshes_total"
REFRESHES = "authapi_refreshes_total"
SESSIONS = "SELECT sessions FROM pg_stat_database WHERE datname = $1"


@dataclass(frozen=True)
class Way:
    """How a server reaches the database."""

    key: str
    label: str
    through_pooler: bool
    env: Mapping[str, str] = field(default_factory=dict)


TRANSACTION_POOLER = {"AUTHAPI_DATABASE_POOLER": "transaction"}
DIRECT = Way("direct", "direct", through_pooler=False)
POOLED = Way("pooled", "through PgBouncer", through_pooler=True, env=TRANSACTION_POOLER)
DIRECT_TX = Way(
    "direct_tx", "direct, POOLER=transaction", through_pooler=False, env=TRANSACTION_POOLER
)


def ways(config: BenchConfig) -> tuple[Way, ...]:
    return (DIRECT, POOLED) if config.quick else (DIRECT, POOLED, DIRECT_TX)


def describe(config: BenchConfig) -> ScenarioResult:
    chosen = ways(config)
    figures = []
    for way in chosen:
        figures += [
            Figure(f"{way.key}_rps", f"{way.label}: refreshes", "/s"),
            Figure(f"{way.key}_p50_ms", f"{way.label}: p50", " ms"),
            Figure(f"{way.key}_p99_ms", f"{way.label}: p99", " ms"),
            Figure(f"{way.key}_one_statement_share", f"{way.label}: share in one statement"),
            Figure(
                f"{way.key}_connections_per_s",
                f"{way.label}: PostgreSQL sessions opened",
                " /s of load",
            ),
        ]
    figures.append(Figure("pooled_ratio", "through PgBouncer ÷ direct (refreshes/s)"))
    if DIRECT_TX in chosen:
        figures += [
            Figure("setting_ratio", "direct with POOLER=transaction ÷ direct"),
            Figure("hop_ratio", "through PgBouncer ÷ direct with POOLER=transaction"),
        ]
    return ScenarioResult(
        name="pooler",
        title="Refresh through PgBouncer",
        what=(
            f"{config.refresh_clients} clients, each with its own session, `POST /refresh` "
            f"in a closed loop with the newest token, against {len(chosen)} servers on one "
            f"PostgreSQL database: {', '.join(way.key for way in chosen)} (PgBouncer in "
            f"transaction mode, default_pool_size {SERVER_CONNECTIONS}), in slices of "
            f"{config.wrk_segment} s taken in turn, "
            f"{config.driver_seconds:g} s each per run after {config.warmup_seconds:g} s of "
            f"warm-up each. The authapi pool is the default (AUTHAPI_DB_POOL_SIZE 20, each "
            f"connection kept open)."
        ),
        figures=figures,
    )


class OpenedSessions:
    """PostgreSQL sessions opened on a database during the slices it wraps (as
    `Refreshers.around`). The statistics of a session still open at the end of a slice
    may reach pg_stat_database a moment later, in the next slice: a count, not a clock."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.count = 0

    @contextlib.contextmanager
    def around(self, _seconds: float) -> Iterator[None]:
        before = postgres.fetchval("postgres", SESSIONS, self.database)
        yield
        self.count += postgres.fetchval("postgres", SESSIONS, self.database) - before


@dataclass
class Measured:
    way: Way
    server: servers.Server
    refreshers: slicing.Refreshers
    opened: OpenedSessions


def counters(base_url: str) -> tuple[float, float]:
    """The server's one-statement refreshes that advanced, and all its refreshes."""
    text = httpx.get(base_url + "/metrics", timeout=10).raise_for_status().text
    advanced = refreshes = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == ONE_STATEMENT and sample.labels.get("outcome") == "advanced":
                advanced = sample.value
            elif sample.name == REFRESHES:
                refreshes = sample.value
    return advanced, refreshes


def measure(config: BenchConfig, result: ScenarioResult) -> None:
    measure_on(config, result, DATABASE, "pooler", ways(config))


def measure_on(
    config: BenchConfig,
    result: ScenarioResult,
    database: str,
    name: str,
    chosen: tuple[Way, ...],
) -> None:
    """`measure` with a database and server directories of the caller's (a test's, so
    that it does not clash with a benchmark running meanwhile) and these ways."""
    try:
        url = postgres.create_database(database)
        # The servers stop before PgBouncer, PgBouncer before the database is dropped.
        with pgbouncer.running(ADMIN_DSN, SERVER_CONNECTIONS) as bouncer, ExitStack() as stack:
            loads = []
            for way in chosen:
                server = _server(config, name, way, url, bouncer)
                stack.enter_context(servers.running(server))
                result.commands.append(server.shown())
                opened = OpenedSessions(database)
                refreshers = slicing.logged_in_refreshers(
                    server.base_url,
                    f"pooler-{way.key}@example.com",
                    config.refresh_clients,
                    around=opened.around,
                )
                loads.append(Measured(way, server, refreshers, opened))
            for _ in range(config.runs):
                result.runs.append(_one_run(config, loads))
            result.commands += [
                f"(driver) authbench/refreshing.py: {config.refresh_clients} keep-alive "
                f"connections per server, POST /refresh, on CPU {config.client_cpu}, the "
                f"servers in turn",
                f"{pgbouncer.PGBOUNCER} (not pinned, as PostgreSQL is not), the "
                f"pgbouncer.ini of authbench/pgbouncer.py: pool_mode = transaction, "
                f"default_pool_size = {SERVER_CONNECTIONS}, auth_type = any, "
                f"max_client_conn = {pgbouncer.MAX_CLIENTS}",
            ]
    finally:
        postgres.drop_database(database)
    result.notes.append(
        "PostgreSQL sessions opened: pg_stat_database.sessions of the bench database, read "
        "before and after each slice, per second of that way's load. Through PgBouncer "
        "they are PgBouncer's server connections (kept open); the app's pool still opens "
        "and closes its overflow connections, but to PgBouncer, which costs no backend."
    )


def _server(
    config: BenchConfig, name: str, way: Way, url: str, bouncer: pgbouncer.PgBouncer
) -> servers.Server:
    env = {**servers.ONE_DATABASE, **way.env, "AUTHAPI_METRICS_PUBLIC": "true"}
    if way.through_pooler:
        # LISTEN needs a session of its own: PostgreSQL itself (docs/operations.md).
        env["AUTHAPI_LISTEN_DATABASE_URL"] = url
        url = bouncer.through(url)
    return servers.authapi(config, f"{name}-{way.key}", url, **env)


def _one_run(config: BenchConfig, loads: list[Measured]) -> dict[str, float]:
    for load in loads:
        load.refreshers.warm_up(config.warmup_seconds)
        load.opened.count = 0
    before = {load.way.key: counters(load.server.base_url) for load in loads}
    refreshers = [load.refreshers for load in loads]
    slicing.alternating(refreshers, config.driver_seconds, config.wrk_segment)
    run: dict[str, float] = {}
    for load in loads:
        advanced, refreshes = counters(load.server.base_url)
        advanced -= before[load.way.key][0]
        refreshes -= before[load.way.key][1]
        key, measured = load.way.key, load.refreshers
        run |= {
            f"{key}_rps": round(measured.per_second, 1),
            f"{key}_p50_ms": measured.ms(50),
            f"{key}_p99_ms": measured.ms(99),
            f"{key}_one_statement_share": round(advanced / refreshes, 3) if refreshes else 0.0,
            f"{key}_connections_per_s": round(load.opened.count / measured.seconds, 1),
        }
    if "pooled_rps" in run and "direct_rps" in run:
        run["pooled_ratio"] = round(run["pooled_rps"] / run["direct_rps"], 3)
    if "direct_tx_rps" in run:
        run["setting_ratio"] = round(run["direct_tx_rps"] / run["direct_rps"], 3)
        run["hop_ratio"] = round(run["pooled_rps"] / run["direct_tx_rps"], 3)
    return run
