"""Refresh rotation on PostgreSQL: 32 clients, each with its own session, refreshing
in a loop with the newest token, against the raw asyncpg ceiling (authbench/ceiling.py:
the same statements, same concurrency, no framework). Targets (issue 6): authapi's
refreshes/s >= 0.5 x the ceiling's transactions/s, and p99 < 50 ms."""

from __future__ import annotations

import json
import os
import shlex
import subprocess

from authbench import accounts, postgres, profiling, refreshing, servers
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
            f"loop with the newest token ({config.driver_seconds:g} s per run, after "
            f"{config.warmup_seconds:g} s of warm-up), vs authbench/ceiling.py: raw "
            f"asyncpg sending the same statements with {clients} connections, on the "
            f"server's CPU. PostgreSQL, fresh database."
        ),
        figures=[
            Figure("authapi_rps", "authapi refreshes", "/s"),
            Figure("ceiling_rps", "raw asyncpg ceiling (same statements)", " tx/s"),
            Figure("ratio", "authapi ÷ ceiling"),
            Figure("authapi_p50_ms", "authapi p50", " ms"),
            Figure("authapi_p99_ms", "authapi p99", " ms"),
            Figure("ceiling_p99_ms", "ceiling p99", " ms"),
            Figure("ceiling_ping_rps", "ceiling with a pool pre-ping", " tx/s"),
        ],
        targets=[Target("ratio", ">=", 0.5), Target("authapi_p99_ms", "<", 50)],
    )


def ceiling(config: BenchConfig, *extra: str) -> tuple[dict[str, float], str]:
    command = [
        str(VENV_BIN / "python"),
        "-m",
        "authbench.ceiling",
        "--database",
        DATABASE,
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
    try:
        _measure(config, result)
    finally:
        postgres.drop_database(DATABASE)


def _measure(config: BenchConfig, result: ScenarioResult) -> None:
    server = servers.authapi(config, "refresh", postgres.create_database(DATABASE))
    with servers.running(server):
        accounts.register(server.base_url, EMAIL)
        sessions = accounts.login_many(server.base_url, EMAIL, config.refresh_clients)
        tokens = [tokens.refresh_token for tokens in sessions]
        result.commands.append(server.shown())
        for _ in range(config.runs):
            with profiling.maybe(
                config, server.pid, config.warmup_seconds + config.driver_seconds, "refresh"
            ):
                load, tokens = refreshing.run_clients(
                    server.base_url, tokens, config.warmup_seconds, config.driver_seconds
                )
            raw, shown = ceiling(config)
            pinged, shown_pinged = ceiling(config, "--ping")
            result.runs.append(
                {
                    "authapi_rps": round(load.per_second, 1),
                    "ceiling_rps": raw["per_s"],
                    "ratio": round(load.per_second / raw["per_s"], 3),
                    "authapi_p50_ms": round(load.ms(50), 2),
                    "authapi_p99_ms": round(load.ms(99), 2),
                    "ceiling_p99_ms": raw["p99_ms"],
                    "ceiling_ping_rps": pinged["per_s"],
                }
            )
        result.commands += [
            f"(driver) authbench/refreshing.py: {config.refresh_clients} keep-alive "
            f"connections, POST /refresh, on CPU {config.client_cpu}",
            shown,
            shown_pinged,
        ]
    result.notes.append(
        "Ceiling statements per refresh, as captured with log_statement=all: BEGIN, "
        "UPDATE sessions ... RETURNING (with the user's role and state as subqueries), "
        "INSERT audit_events ... RETURNING, COMMIT; `--ping` adds the BEGIN; ROLLBACK "
        "of SQLAlchemy's pool pre-ping, which authapi does not send. The ceiling runs on "
        f"the server's CPU with {config.refresh_clients} connections; authapi's pool "
        "holds at most 20 (AUTHAPI_DB_POOL_SIZE 10 + as many overflow)."
    )
