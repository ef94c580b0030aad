"""Login: password-grant logins per second at the configured argon2id parameters
(wrk POSTs, bench/lua/post.lua, on SQLite and on PostgreSQL), the cost of one hash,
and `/whoami` p99 during a login flood vs idle, measured by bench/login_flood.py
(its `--quick` in quick mode). Issue 6 sets no ratio here: reported, not judged."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlencode

import argon2

from authapi.config import Settings
from authbench import accounts, postgres, servers, wrk
from authbench.config import BENCH_DIR, LUA_DIR, ROOT, VENV_BIN, BenchConfig
from authbench.results import Figure, ScenarioResult

EMAIL = "login@example.com"
DATABASE = "authapi_bench_login"
CONNECTIONS = 4  # below hash_workers + hash_queue: every login is hashed, none refused
LOGIN_BODY = "  # BENCH_BODY=grant_type=password&username=...&password=..."
FLOOD_FIGURES = {
    "idle_whoami_p99_ms": "flood_idle_p99_ms",
    "flood_whoami_p99_ms": "flood_p99_ms",
    "flood_whoami_p99_over_idle_p99": "flood_ratio",
    "burst_whoami_p99_ms": "flood_burst_p99_ms",
    "flood_peak_rss_mib": "flood_peak_rss_mib",
}


def describe(config: BenchConfig) -> ScenarioResult:
    settings = Settings(_env_file=None)
    params = (
        f"argon2id m={settings.argon2_memory_cost} KiB, t={settings.argon2_time_cost}, "
        f"p={settings.argon2_parallelism}; hash_workers={settings.hash_workers}, "
        f"hash_queue={settings.hash_queue}"
    )
    return ScenarioResult(
        name="login",
        title="Login",
        what=(
            f"Logins/s at the defaults ({params}), "
            f"`wrk -t1 -c{CONNECTIONS} -d{config.login_seconds}s` of password grants with "
            f"the right password, on SQLite and on PostgreSQL; one hash timed in the "
            f"bench process; `/whoami` p99 idle vs during a flood of "
            f"{50 if config.quick else 500} concurrent logins (bench/login_flood.py, "
            f"SQLite, its own medians of {1 if config.quick else 3} runs)."
        ),
        figures=[
            Figure("hash_ms", "one argon2id hash", " ms"),
            Figure("logins_sqlite", "logins, SQLite", "/s"),
            Figure("logins_postgres", "logins, PostgreSQL", "/s"),
            Figure("login_p50_ms", "login p50, PostgreSQL", " ms"),
            Figure("flood_idle_p99_ms", "/whoami p99 idle", " ms"),
            Figure("flood_p99_ms", "/whoami p99 during the flood", " ms"),
            Figure("flood_ratio", "flood ÷ idle p99"),
            Figure("flood_burst_p99_ms", "/whoami p99 in the refusal burst", " ms"),
            Figure("flood_peak_rss_mib", "server RSS peak in the flood", " MiB"),
        ],
    )


def hash_ms(settings: Settings) -> float:
    hasher = argon2.PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_cost,
        parallelism=settings.argon2_parallelism,
        type=argon2.Type.ID,
    )
    times = []
    for _ in range(5):
        started = time.perf_counter()
        hasher.hash(accounts.PASSWORD)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def logins_per_second(
    config: BenchConfig, name: str, database_url: str | None
) -> tuple[list[wrk.WrkResult], str]:
    server = servers.authapi(config, name, database_url)
    with servers.running(server):
        accounts.register(server.base_url, EMAIL)
        form = {"grant_type": "password", "username": EMAIL, "password": accounts.PASSWORD}
        env = {**os.environ, "BENCH_BODY": urlencode(form)}
        return [
            wrk.run(
                server.base_url + "/token",
                cpu=config.client_cpu,
                seconds=config.login_seconds,
                connections=CONNECTIONS,
                script=LUA_DIR / "post.lua",
                env=env,
            )
            for _ in range(config.runs)
        ], server.shown()


def flood(config: BenchConfig, result: ScenarioResult) -> dict[str, float]:
    output = config.run_dir("login") / "login_flood.json"
    output.unlink(missing_ok=True)
    command = [str(VENV_BIN / "python"), str(BENCH_DIR / "login_flood.py"), "--output", str(output)]
    if config.quick:
        command.append("--quick")
    if config.nice:
        command += ["--nice", str(config.nice)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0 or not output.exists():
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise RuntimeError(f"bench/login_flood.py failed ({done.returncode})")
    report: dict[str, Any] = json.loads(output.read_text())
    median = report["configurations"][0]["median"]
    result.commands.append(
        "python bench/login_flood.py"
        + (" --quick" if config.quick else "")
        + (f" --nice {config.nice}" if config.nice else "")
        + f" --output {output.relative_to(ROOT)}"
    )
    return {ours: median[theirs] for theirs, ours in FLOOD_FIGURES.items()}


def measure(config: BenchConfig, result: ScenarioResult) -> None:
    try:
        _measure(config, result)
    finally:
        postgres.drop_database(DATABASE)


def _measure(config: BenchConfig, result: ScenarioResult) -> None:
    settings = Settings(_env_file=None)
    sqlite, shown_sqlite = logins_per_second(config, "login-sqlite", None)
    pg, shown_pg = logins_per_second(config, "login-postgres", postgres.create_database(DATABASE))
    result.commands += [shown_sqlite, shown_pg, pg[0].command + LOGIN_BODY]
    flooded = flood(config, result)
    for number in range(config.runs):
        result.runs.append(
            {
                "hash_ms": round(hash_ms(settings), 1),
                "logins_sqlite": round(sqlite[number].requests_per_s, 2),
                "logins_postgres": round(pg[number].requests_per_s, 2),
                "login_p50_ms": round(pg[number].p50_ms, 1),
                **flooded,
            }
        )
    result.notes.append(
        "The flood figures are bench/login_flood.py's own medians (repeated in each "
        "run's column). One hash is timed on the load generator's CPU, not the server's."
    )
