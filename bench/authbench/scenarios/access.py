"""Access path: `GET /whoami` with a valid access token (PyJWT verification of an
EdDSA token, no database) against `GET /healthz` of the same server, which only reads
nothing and answers; same wrk load. Target (issue 6): whoami/healthz >= 0.8."""

from __future__ import annotations

from authbench import accounts, profiling, servers, wrk
from authbench.config import BenchConfig
from authbench.results import Figure, ScenarioResult, Target

EMAIL = "access@example.com"


def describe(config: BenchConfig) -> ScenarioResult:
    return ScenarioResult(
        name="access",
        title="Access path",
        what=(
            f"`GET /whoami` with a valid access token vs `GET /healthz`, one server "
            f"(embedded SQLite: neither touches the database), "
            f"`wrk -t1 -c32`, {config.wrk_seconds} s each per run, in slices of "
            f"{config.wrk_segment} s taken in turn."
        ),
        figures=[
            Figure("healthz_rps", "GET /healthz", " req/s"),
            Figure("whoami_rps", "GET /whoami", " req/s"),
            Figure("ratio", "whoami ÷ healthz"),
            Figure("healthz_p99_ms", "GET /healthz p99", " ms"),
            Figure("whoami_p99_ms", "GET /whoami p99", " ms"),
        ],
        targets=[Target("ratio", ">=", 0.8)],
    )


def measure(config: BenchConfig, result: ScenarioResult) -> None:
    server = servers.authapi(config, "access", None)
    with servers.running(server):
        accounts.register(server.base_url, EMAIL)
        result.commands.append(server.shown())
        seconds = config.wrk_seconds
        cpu = config.client_cpu
        warm = max(1, round(config.warmup_seconds))
        wrk.run(server.base_url + "/healthz", cpu=cpu, seconds=warm)
        for number in range(config.runs):
            # A fresh token each run: the default lifetime is 5 minutes.
            token = accounts.login(server.base_url, EMAIL).access_token
            header = f"Authorization: Bearer {token}"
            if number == 0:
                wrk.run(server.base_url + "/whoami", cpu=cpu, seconds=warm, headers=[header])
            healthz_load = profiling.profiled(
                config,
                server.pid,
                "access-healthz",
                wrk.load(server.base_url + "/healthz", cpu=cpu),
            )
            whoami_load = profiling.profiled(
                config,
                server.pid,
                "access-whoami",
                wrk.load(server.base_url + "/whoami", cpu=cpu, headers=[header]),
            )
            healthz, whoami = wrk.alternating(
                [healthz_load, whoami_load], seconds, config.wrk_segment
            )
            result.runs.append(
                {
                    "healthz_rps": round(healthz.requests_per_s, 1),
                    "whoami_rps": round(whoami.requests_per_s, 1),
                    "ratio": round(whoami.requests_per_s / healthz.requests_per_s, 3),
                    "healthz_p99_ms": healthz.p99_ms,
                    "whoami_p99_ms": whoami.p99_ms,
                }
            )
        result.commands += [healthz.command, whoami.command]
