"""Refresh rotation on PostgreSQL: 32 clients, each with its own session, refreshing
in a loop with the newest token, against two measures of what the same load could do:

- `GET /healthz` of the same server process, wrk with as many connections, in slices
  taken in turn with the refreshes (issue 15, point 1: refreshes/s >= 0.25 x healthz
  req/s);
- the raw asyncpg ceiling (authbench/ceiling.py: the same statements, same
  concurrency, no framework; issue 6: refreshes/s >= 0.5 x its transactions/s).

And p99 < 50 ms (issue 6). In a closed loop the mean latency is clients ÷ throughput
(Little's law: 32 clients at 600 refreshes/s wait 53 ms on average, however even the
tail), so the same clients also refresh paced, at half the closed loop's rate: the
latency a team sees at a load its server is sized for."""

from __future__ import annotations

import json
import os
import shlex
import subprocess

from authbench import postgres, profiling, servers, slicing, wrk
from authbench.config import BENCH_DIR, VENV_BIN, BenchConfig
from authbench.results import Figure, ScenarioResult, Target

EMAIL = "refresh@example.com"
DATABASE = "authapi_bench_refresh"


def describe(config: BenchConfig) -> ScenarioResult:
    clients = config.refresh_clients
    return ScenarioResult(
        name="refresh",
        title="Refresh rotation",
        what=(
            f"{clients} clients, each with its own session, `POST /refresh` in a closed "
            f"loop with the newest token, vs `GET /healthz` of the same server, "
            f"`wrk -t1 -c{clients}`, in slices of {config.wrk_segment} s taken in turn, "
            f"{config.driver_seconds:g} s each per run after {config.warmup_seconds:g} s of "
            f"warm-up each (wrk: whole seconds, at least 1); then the same clients paced "
            f"(authbench/httpload.py `paced_loop`) at half the refreshes/s of the closed "
            f"loop, {config.driver_seconds:g} s, latencies from when each refresh was due. "
            f"wrk rather than the "
            f"refreshes' Python client for `/healthz`: the ratio's divisor is what the "
            f"server itself answers, and at `/healthz`'s speed the Python client sets part "
            f"of the pace (it reached 75-90 % of wrk's req/s on the same server); a refresh "
            f"costs the server several times more, so the client's share of its pace is "
            f"small. Then "
            f"authbench/ceiling.py: raw asyncpg sending the same statements with "
            f"{clients} connections, on the server's CPU, {config.driver_seconds:g} s. "
            f"PostgreSQL, fresh database."
        ),
        figures=[
            Figure("authapi_rps", "authapi refreshes", "/s"),
            Figure("ceiling_rps", "raw asyncpg ceiling (same statements)", " tx/s"),
            Figure("ratio", "authapi ÷ ceiling"),
            Figure("authapi_p50_ms", "authapi p50", " ms"),
            Figure("authapi_p99_ms", "authapi p99", " ms"),
            Figure("paced_rps", "paced at half the closed loop's rate", "/s"),
            Figure("paced_p50_ms", "paced p50", " ms"),
            Figure("paced_p99_ms", "paced p99", " ms"),
            Figure("ceiling_p99_ms", "ceiling p99", " ms"),
            Figure("ceiling_ping_rps", "ceiling with a pool pre-ping", " tx/s"),
            Figure("healthz_rps", "GET /healthz, same server, as many connections", " req/s"),
            Figure("healthz_ratio", "authapi refreshes ÷ /healthz"),
            Figure("healthz_p99_ms", "GET /healthz p99", " ms"),
        ],
        targets=[
            Target("ratio", ">=", 0.5),
            Target("authapi_p99_ms", "<", 50),
            Target("healthz_ratio", ">=", 0.25),
        ],
    )


def ceiling(config: BenchConfig, database: str, *extra: str) -> tuple[dict[str, float], str]:
    command = [
        str(VENV_BIN / "python"),
        "-m",
        "authbench.ceiling",
        "--database",
        database,
        "--clients",
        str(config.refresh_clients),
        "--warmup",
        str(config.warmup_seconds),
        "--seconds",
        str(config.driver_seconds),
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(BENCH_DIR)}
    done = subprocess.run(
        servers.pinned(command, config.server_cpu),
        capture_output=True,
        text=True,
        env=env,
        timeout=config.driver_seconds + 120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ceiling failed ({done.returncode}):\n{done.stderr[-3000:]}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    shown = shlex.join(servers.pinned(["python", *command[1:]], config.server_cpu))
    return figures, shown


def measure(config: BenchConfig, result: ScenarioResult) -> None:
    measure_on(config, result, DATABASE, "refresh")


def measure_on(config: BenchConfig, result: ScenarioResult, database: str, name: str) -> None:
    """`measure` with a database and a server directory of the caller's (a test's, so
    that it does not clash with a benchmark running meanwhile)."""
    try:
        _measure(config, result, database, name)
    finally:
        postgres.drop_database(database)


def _measure(config: BenchConfig, result: ScenarioResult, database: str, name: str) -> None:
    server = servers.authapi(config, name, postgres.create_database(database))
    with servers.running(server):
        refreshes = slicing.logged_in_refreshers(
            server.base_url,
            EMAIL,
            config.refresh_clients,
            around=lambda seconds: profiling.maybe(config, server.pid, seconds, "refresh"),
        )
        result.commands.append(server.shown())
        healthz = slicing.WrkSlices(
            wrk.load(
                server.base_url + "/healthz",
                cpu=config.client_cpu,
                connections=config.refresh_clients,
            )
        )
        for _ in range(config.runs):
            # Warm-up each run: the server idled through the previous run's ceiling.
            refreshes.warm_up(config.warmup_seconds)
            healthz.run(config.warmup_seconds)  # forgotten by alternating
            slicing.alternating([refreshes, healthz], config.driver_seconds, config.wrk_segment)
            paced_rate = refreshes.per_second / 2
            paced = refreshes.paced(paced_rate, config.warmup_seconds, config.driver_seconds)
            raw, shown = ceiling(config, database)
            pinged, shown_pinged = ceiling(config, database, "--ping")
            result.runs.append(
                {
                    "authapi_rps": round(refreshes.per_second, 1),
                    "ceiling_rps": raw["per_s"],
                    "ratio": round(refreshes.per_second / raw["per_s"], 3),
                    "authapi_p50_ms": refreshes.ms(50),
                    "authapi_p99_ms": refreshes.ms(99),
                    "paced_rps": round(paced_rate, 1),
                    "paced_p50_ms": round(paced.ms(50), 2),
                    "paced_p99_ms": round(paced.ms(99), 2),
                    "ceiling_p99_ms": raw["p99_ms"],
                    "ceiling_ping_rps": pinged["per_s"],
                    "healthz_rps": round(healthz.result.requests_per_s, 1),
                    "healthz_ratio": round(refreshes.per_second / healthz.result.requests_per_s, 3),
                    "healthz_p99_ms": healthz.result.p99_ms,
                }
            )
        result.commands += [
            f"(driver) authbench/refreshing.py: {config.refresh_clients} keep-alive "
            f"connections, POST /refresh, on CPU {config.client_cpu}, in turn with:",
            healthz.result.command,
            shown,
            shown_pinged,
        ]
    result.notes.append(
        "Ceiling statements per refresh, as captured with log_statement=all: BEGIN, "
        "UPDATE sessions ... RETURNING (with the user's role and state as subqueries), "
        "INSERT audit_events ... RETURNING, COMMIT; `--ping` adds the BEGIN; ROLLBACK "
        "of SQLAlchemy's pool pre-ping, which authapi does not send. The ceiling runs on "
        f"the server's CPU with {config.refresh_clients} connections; authapi's pool "
        "holds at most 20 (AUTHAPI_DB_POOL_SIZE), each kept open once opened."
    )
