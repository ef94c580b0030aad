"""Instant revocation (issue 5): how long a session revoked through one instance takes
to be refused by another (PostgreSQL NOTIFY between two `authapi serve` processes), and
what the check costs on the access path: `GET /whoami` on an instance with the feature
against one with `AUTHAPI_INSTANT_REVOCATION=false`, same wrk load, taken in turn."""

from __future__ import annotations

import time

import httpx

from authbench import accounts, postgres, servers, wrk
from authbench.config import BenchConfig
from authbench.results import Figure, ScenarioResult, Target, percentile

DATABASE = "authapi_bench_revocation"
EMAIL = "revocation@example.com"
SHARED = servers.ONE_DATABASE


def revocations(config: BenchConfig) -> int:
    return 10 if config.quick else 100


def describe(config: BenchConfig) -> ScenarioResult:
    return ScenarioResult(
        name="revocation",
        title="Instant revocation",
        what=(
            f"{revocations(config)} sessions logged in through instance A and logged out "
            "through instance B (two processes, one PostgreSQL database); the delay from B's "
            "answer to A's first 401 on `GET /whoami` (polled back to back on one "
            "connection, about 1 ms apart). Then `GET /whoami` throughput of A against an "
            "instance without the feature (`AUTHAPI_INSTANT_REVOCATION=false`), "
            f"`wrk -t1 -c32`, {config.wrk_seconds} s each per run, in turn."
        ),
        figures=[
            Figure("propagation_p50_ms", "propagation p50", " ms"),
            Figure("propagation_p99_ms", "propagation p99", " ms"),
            Figure("propagation_max_ms", "propagation max", " ms"),
            Figure("with_rps", "GET /whoami, feature on", " req/s"),
            Figure("without_rps", "GET /whoami, feature off", " req/s"),
            Figure("ratio", "on ÷ off"),
        ],
        targets=[Target("propagation_p99_ms", "<", 1000)],
    )


def propagation_ms(a: str, b: str, sessions: list[accounts.Tokens]) -> list[float]:
    delays = []
    with httpx.Client(base_url=a, timeout=10) as on_a, httpx.Client(base_url=b, timeout=10) as on_b:
        for tokens in sessions:
            header = {"Authorization": f"Bearer {tokens.access_token}"}
            if on_a.get("/whoami", headers=header).status_code != 200:
                raise RuntimeError("a fresh session's access token was refused")
            response = on_b.post("/logout", json={"refresh_token": tokens.refresh_token})
            if response.status_code != 204:
                raise RuntimeError(f"logout: {response.status_code} {response.text[:200]}")
            revoked = time.perf_counter()
            while on_a.get("/whoami", headers=header).status_code == 200:
                if time.perf_counter() - revoked > 10:
                    raise RuntimeError("instance A never refused a revoked session")
            delays.append((time.perf_counter() - revoked) * 1000)
    return delays


def measure(config: BenchConfig, result: ScenarioResult) -> None:
    database_url = postgres.create_database(DATABASE)
    try:
        a = servers.authapi(config, "revocation-a", database_url, **SHARED)
        b = servers.authapi(config, "revocation-b", database_url, **SHARED)
        off = servers.authapi(
            config, "revocation-off", database_url, AUTHAPI_INSTANT_REVOCATION="false", **SHARED
        )
        with servers.running(a, b, off):
            result.commands += [a.shown(), b.shown(), off.shown()]
            accounts.register(a.base_url, EMAIL)
            cpu = config.client_cpu
            warm = max(1, round(config.warmup_seconds))
            for _ in range(config.runs):
                # One after the other: the hasher's queue refuses a big burst.
                sessions = [accounts.login(a.base_url, EMAIL) for _ in range(revocations(config))]
                delays = propagation_ms(a.base_url, b.base_url, sessions)
                token = accounts.login(a.base_url, EMAIL).access_token
                header = f"Authorization: Bearer {token}"
                on_load = wrk.load(a.base_url + "/whoami", cpu=cpu, headers=[header])
                off_load = wrk.load(off.base_url + "/whoami", cpu=cpu, headers=[header])
                on_load(warm)
                off_load(warm)
                with_feature, without = wrk.alternating(
                    [on_load, off_load], config.wrk_seconds, config.wrk_segment
                )
                result.runs.append(
                    {
                        "propagation_p50_ms": round(percentile(delays, 50), 2),
                        "propagation_p99_ms": round(percentile(delays, 99), 2),
                        "propagation_max_ms": round(max(delays), 2),
                        "with_rps": round(with_feature.requests_per_s, 1),
                        "without_rps": round(without.requests_per_s, 1),
                        "ratio": round(with_feature.requests_per_s / without.requests_per_s, 3),
                    }
                )
            result.commands += [with_feature.command, without.command]
    finally:
        postgres.drop_database(DATABASE)
