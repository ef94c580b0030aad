"""MFA: what a second factor costs a login (issues 14 and 15), side by side on one
server on PostgreSQL, at the default argon2id parameters: the password grant of users
without a second factor; the two-step login of TOTP users (the password grant
answering 400 `mfa_required`, then the MFA grant with the code) and its MFA grant
alone; and a passwordless passkey login (`POST /passkeys/options`, then the passkey
grant with an ES256 assertion). Reported, no target: the ratios say what the second
step adds to the hash the password grant costs anyway."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import uvloop

from authbench import factors, postgres, procfs, servers
from authbench.config import BenchConfig
from authbench.httpload import LoadResult, Step, closed_loop
from authbench.logins import LoginClient, PasskeyLogin, PasswordLogin, TotpPool, TwoStepLogin
from authbench.results import Figure, ScenarioResult

DATABASE = "authapi_bench_mfa"
# The web app the passkeys are used from: its host is the RP ID (an IP address, the
# issuer of `authapi serve --port N`, is none: passkeys would be off).
APP_URL = "http://localhost:3000"
CONNECTIONS = 4  # below hash_workers + hash_queue, as in `login`: every login is hashed
KINDS = ("password", "two_step", "passkey")


def describe(config: BenchConfig) -> ScenarioResult:
    return ScenarioResult(
        name="mfa",
        title="Logins with a second factor",
        what=(
            f"{CONNECTIONS} closed-loop clients per kind of login, on one server on "
            f"PostgreSQL (argon2id defaults; AUTHAPI_APP_URL={APP_URL}, so that passkeys "
            f"are on), the kinds in turn in slices of {config.wrk_segment} s, "
            f"{config.login_seconds} s each per run: the password grant of users without "
            f"a second factor; the two steps of {config.mfa_users} TOTP users' logins "
            f"(password grant → 400 mfa_required, then the MFA grant with the code; a "
            f"user at most once per 30 s step); a passkey login (POST /passkeys/options, "
            f"then the passkey grant), a passkey per client."
        ),
        figures=[
            Figure("password_per_s", "password grant alone", " logins/s"),
            Figure("password_p50_ms", "password grant p50", " ms"),
            Figure("password_p99_ms", "password grant p99", " ms"),
            Figure("password_cpu_ms", "password grant: server CPU per login", " ms"),
            Figure("two_step_per_s", "TOTP two-step login", " logins/s"),
            Figure("two_step_p50_ms", "TOTP two-step p50", " ms"),
            Figure("two_step_p99_ms", "TOTP two-step p99", " ms"),
            Figure("two_step_cpu_ms", "TOTP two-step: server CPU per login", " ms"),
            Figure("mfa_p50_ms", "MFA grant step alone p50", " ms"),
            Figure("mfa_p99_ms", "MFA grant step alone p99", " ms"),
            Figure("two_step_rate_ratio", "two-step ÷ password-only, logins/s"),
            Figure("two_step_p50_ratio", "two-step ÷ password-only, p50"),
            Figure("two_step_cpu_ratio", "two-step ÷ password-only, server CPU per login"),
            Figure("passkey_per_s", "passkey login", " logins/s"),
            Figure("passkey_p50_ms", "passkey login p50", " ms"),
            Figure("passkey_p99_ms", "passkey login p99", " ms"),
            Figure("passkey_cpu_ms", "passkey login: server CPU per login", " ms"),
            Figure("passkey_cpu_ratio", "passkey ÷ password-only, server CPU per login"),
        ],
    )


def measure(config: BenchConfig, result: ScenarioResult) -> None:
    measure_on(config, result, DATABASE, "mfa")


def measure_on(config: BenchConfig, result: ScenarioResult, database: str, name: str) -> None:
    """`measure` with a database and a server directory of the caller's (a test's, so
    that it does not clash with a benchmark running meanwhile)."""
    try:
        _measure(config, result, database, name)
    finally:
        postgres.drop_database(database)


def _measure(config: BenchConfig, result: ScenarioResult, database: str, name: str) -> None:
    database_url = postgres.create_database(database)
    server = servers.authapi(config, name, database_url, AUTHAPI_APP_URL=APP_URL)
    with servers.running(server):
        base = server.base_url
        started = time.monotonic()
        plain = factors.plain_users(base, "plain", CONNECTIONS)
        passkeys = factors.passkey_users(base, "passkey", CONNECTIONS, APP_URL)
        pool = TotpPool(factors.totp_users(server, database, config.mfa_users))
        made = time.monotonic() - started
        clients: dict[str, list[LoginClient]] = {
            "password": [PasswordLogin(base, email) for email in plain],
            "two_step": [TwoStepLogin(base, pool) for _ in range(CONNECTIONS)],
            "passkey": [PasskeyLogin(base, passkey) for passkey in passkeys],
        }
        runs = uvloop.run(_run_all(config, server.pid, clients))
    result.commands.append(server.shown())
    for run in runs:
        result.runs.append(_figures(run))
    result.notes += [
        f"Setup: {CONNECTIONS} users without a second factor, {CONNECTIONS} with a passkey, "
        f"{config.mfa_users} with TOTP (one turned on over HTTP, the others copies of it in the "
        f"database, each with a secret of its own) in {made:.1f} s; {pool.lent} two-step "
        "logins in all (warm-up included).",
        "Latency percentiles are over all the logins of a run (its slices together); a "
        "login still in flight when its slice ends is not counted.",
        "Server CPU per login: the server process's CPU time (hashing threads included, "
        "PostgreSQL's backends not) over each slice ÷ the logins completed in it; less "
        "sensitive than logins/s to other work on the machine.",
    ]


@dataclass
class KindRun:
    """One kind of login over a run: its slices' logins together, and the server's CPU
    time while they ran (the hashing threads included; PostgreSQL's not)."""

    load: LoadResult = field(default_factory=lambda: LoadResult(seconds=0))
    cpu_seconds: float = 0.0

    def add(self, part: LoadResult, cpu_seconds: float) -> None:
        self.load.seconds += part.seconds
        self.load.latencies += part.latencies
        self.load.done += part.done
        for name, seconds in part.parts.items():
            self.load.parts.setdefault(name, []).extend(seconds)
        self.cpu_seconds += cpu_seconds

    def cpu_ms(self) -> float:
        """Server CPU per login, every login the slices completed counted."""
        return self.cpu_seconds * 1000 / self.load.done if self.load.done else float("nan")


async def _run_all(
    config: BenchConfig, pid: int, clients: dict[str, list[LoginClient]]
) -> list[dict[str, KindRun]]:
    try:
        return await _runs(config, pid, clients)
    finally:
        for each in clients.values():
            for client in each:
                await client.connection.close()


async def _runs(
    config: BenchConfig, pid: int, clients: dict[str, list[LoginClient]]
) -> list[dict[str, KindRun]]:
    steps: dict[str, list[Step]] = {
        kind: [client.step for client in each] for kind, each in clients.items()
    }
    for each in steps.values():  # warm-up: connections, caches, the first hashes
        await closed_loop(each, config.warmup_seconds, 0)
    runs = []
    slices = max(1, config.login_seconds // config.wrk_segment)
    for _ in range(config.runs):
        run = {kind: KindRun() for kind in KINDS}
        for _ in range(slices):
            for kind in KINDS:
                before = procfs.cpu_seconds(pid)
                part = await closed_loop(steps[kind], 0, config.wrk_segment)
                run[kind].add(part, procfs.cpu_seconds(pid) - before)
        runs.append(run)
    return runs


def _figures(run: dict[str, KindRun]) -> dict[str, float]:
    password, two_step, passkey = run["password"], run["two_step"], run["passkey"]
    mfa = LoadResult(seconds=0, latencies=two_step.load.parts.get("mfa", []))
    figures: dict[str, float] = {}
    for kind, measured in run.items():
        figures |= {
            f"{kind}_per_s": round(measured.load.per_second, 2),
            f"{kind}_p50_ms": round(measured.load.ms(50), 1),
            f"{kind}_p99_ms": round(measured.load.ms(99), 1),
            f"{kind}_cpu_ms": round(measured.cpu_ms(), 2),
        }
    return figures | {
        "mfa_p50_ms": round(mfa.ms(50), 1),
        "mfa_p99_ms": round(mfa.ms(99), 1),
        "two_step_rate_ratio": _ratio(two_step.load.per_second, password.load.per_second),
        "two_step_p50_ratio": _ratio(two_step.load.ms(50), password.load.ms(50)),
        "two_step_cpu_ratio": _ratio(two_step.cpu_ms(), password.cpu_ms()),
        "passkey_cpu_ratio": _ratio(passkey.cpu_ms(), password.cpu_ms()),
    }


def _ratio(value: float, base: float) -> float:
    return round(value / base, 3) if base else float("nan")
