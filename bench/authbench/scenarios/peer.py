"""Peer: authapi's `GET /users/me` (verify the access token, read the user) against a
minimal fastapi-users app's `GET /users/me` (bench/peers/fastapi_users_app: JWT
strategy, SQLAlchemy + asyncpg), both on PostgreSQL, same loop and HTTP parser, same
wrk load, alternating. Target (issue 6): authapi/peer >= 3."""

from __future__ import annotations

from authbench import accounts, postgres, profiling, servers, wrk
from authbench.config import BenchConfig
from authbench.results import Figure, ScenarioResult, Target

EMAIL = "peer@example.com"
AUTHAPI_DB = "authapi_bench_peer_authapi"
PEER_DB = "authapi_bench_peer_fastapi_users"
PEER_SECRET = "bench-peer-jwt-secret-of-at-least-32-bytes"  # noqa: S105


def describe(config: BenchConfig) -> ScenarioResult:
    return ScenarioResult(
        name="peer",
        title="Peer: fastapi-users",
        what=(
            f"`GET /users/me` of authapi vs of a minimal fastapi-users app, each on a "
            f"fresh PostgreSQL database, `wrk -t1 -c32`, {config.wrk_seconds} s each per run, "
            f"in slices of {config.wrk_segment} s taken in turn."
        ),
        figures=[
            Figure("authapi_rps", "authapi GET /users/me", " req/s"),
            Figure("peer_rps", "fastapi-users GET /users/me", " req/s"),
            Figure("ratio", "authapi ÷ fastapi-users"),
            Figure("authapi_p99_ms", "authapi p99", " ms"),
            Figure("peer_p99_ms", "fastapi-users p99", " ms"),
        ],
        targets=[Target("ratio", ">=", 3.0)],
    )


def measure(config: BenchConfig, result: ScenarioResult) -> None:
    try:
        _measure(config, result)
    finally:
        postgres.drop_database(AUTHAPI_DB)
        postgres.drop_database(PEER_DB)


def _measure(config: BenchConfig, result: ScenarioResult) -> None:
    ours = servers.authapi(config, "peer-authapi", postgres.create_database(AUTHAPI_DB))
    with servers.running(ours):
        theirs = servers.peer(
            config, "peer-fastapi-users", postgres.create_database(PEER_DB), PEER_SECRET
        )
        with servers.running(theirs):
            accounts.register(ours.base_url, EMAIL)
            peer_header = (
                f"Authorization: Bearer {accounts.peer_access_token(theirs.base_url, EMAIL)}"
            )
            result.commands += [ours.shown(), theirs.shown()]
            cpu, seconds = config.client_cpu, config.wrk_seconds
            warm = max(1, round(config.warmup_seconds))
            for number in range(config.runs):
                token = accounts.login(ours.base_url, EMAIL).access_token
                our_header = f"Authorization: Bearer {token}"
                if number == 0:
                    wrk.run(
                        ours.base_url + "/users/me", cpu=cpu, seconds=warm, headers=[our_header]
                    )
                    wrk.run(
                        theirs.base_url + "/users/me", cpu=cpu, seconds=warm, headers=[peer_header]
                    )
                ours_load = profiling.profiled(
                    config,
                    ours.pid,
                    "peer-authapi-users-me",
                    wrk.load(ours.base_url + "/users/me", cpu=cpu, headers=[our_header]),
                )
                theirs_load = wrk.load(
                    theirs.base_url + "/users/me", cpu=cpu, headers=[peer_header]
                )
                a, p = wrk.alternating([ours_load, theirs_load], seconds, config.wrk_segment)
                result.runs.append(
                    {
                        "authapi_rps": round(a.requests_per_s, 1),
                        "peer_rps": round(p.requests_per_s, 1),
                        "ratio": round(a.requests_per_s / p.requests_per_s, 3),
                        "authapi_p99_ms": a.p99_ms,
                        "peer_p99_ms": p.p99_ms,
                    }
                )
            result.commands += [a.command, p.command]
    result.notes.append(
        "The peer's token is an HS256 JWT (fastapi-users' default), authapi's an EdDSA "
        "one; both read the user by primary key per request."
    )
