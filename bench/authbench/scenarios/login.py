"""Login: password-grant logins per second at the configured argon2id parameters
(wrk POSTs, bench/lua/post.lua, on SQLite and on PostgreSQL) and the cost of one hash.
Issue 6 sets no ratio here: reported, not judged. What a flood of logins does to other
requests is the `login_flood` scenario."""

from __future__ import annotations

import os
import statistics
import time
from urllib.parse import urlencode

import argon2

from authapi.config import Settings
from authbench import accounts, postgres, servers, wrk
from authbench.config import LUA_DIR, BenchConfig
from authbench.results import Figure, ScenarioResult

EMAIL = "login@example.com"
DATABASE = "authapi_bench_login"
CONNECTIONS = 4  # below hash_workers + hash_queue: every login is hashed, none refused
LOGIN_BODY = "  # BENCH_BODY=grant_type=password&username=...&password=..."


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
            f"bench process."
        ),
        figures=[
            Figure("hash_ms", "one argon2id hash", " ms"),
            Figure("logins_sqlite", "logins, SQLite", "/s"),
            Figure("logins_postgres", "logins, PostgreSQL", "/s"),
            Figure("login_p50_ms", "login p50, PostgreSQL", " ms"),
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
    for number in range(config.runs):
        result.runs.append(
            {
                "hash_ms": round(hash_ms(settings), 1),
                "logins_sqlite": round(sqlite[number].requests_per_s, 2),
                "logins_postgres": round(pg[number].requests_per_s, 2),
                "login_p50_ms": round(pg[number].p50_ms, 1),
            }
        )
    result.notes.append("One hash is timed on the load generator's CPU, not the server's.")
