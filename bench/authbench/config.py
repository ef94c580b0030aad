"""Sizes, durations and paths of a run: the full run, or `--quick` (CI's smoke run)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent
ROOT = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work"  # gitignored: venvs, logs, data directories, raw output
VENV_BIN = ROOT / ".venv" / "bin"
PEER_DIR = BENCH_DIR / "peers" / "fastapi_users_app"
PEER_VENV_BIN = WORK_DIR / "peer-venv" / "bin"
SIMPLEJWT_DIR = BENCH_DIR / "peers" / "simplejwt_app"
SIMPLEJWT_VENV_BIN = WORK_DIR / "simplejwt-venv" / "bin"
TOOLS_VENV_BIN = WORK_DIR / "tools-venv" / "bin"
LUA_DIR = BENCH_DIR / "lua"
ADMIN_DSN = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
# Refresh tokens are derived from this (AUTHAPI_REFRESH_TOKEN_SECRET of every server),
# so that the scale scenario can compute the tokens of sessions it inserted in bulk.
REFRESH_SECRET = "bench-refresh-token-secret-not-for-production-use"  # noqa: S105


@dataclass(frozen=True)
class BenchConfig:
    quick: bool
    runs: int
    wrk_seconds: int  # each wrk measurement (access, peer), per run and server
    wrk_segment: int  # ... taken in slices this long, the two servers alternating
    warmup_seconds: float  # load before the measured runs, per server
    driver_seconds: float  # each Python-driver measurement (refresh, scale)
    refresh_clients: int
    refresh_races: int  # concurrent pairs of refreshes of one token (peer_simplejwt)
    scale_small: int  # sessions in the table: the baseline of the scale scenario
    scale_large: int
    prune_rows: int
    audit_small: int  # audit events in the table: the baseline of audit_scale
    audit_large: int
    audit_listings: int  # timed calls of each audit listing per table and run
    login_seconds: int
    mfa_users: int  # TOTP users of the mfa scenario: at least its two-step logins in 30 s
    flood_logins: int  # concurrent logins of the login flood
    flood_idle_requests: int  # /whoami probe requests before the flood
    quiet_wait_seconds: float  # before each flood run, wait up to this for a quiet machine
    server_cpu: int | None
    client_cpu: int | None
    output_dir: Path  # RESULTS.md and the raw JSON go here
    profile: bool = False  # py-spy the server during the access and refresh loads
    nice: int = 0  # scheduling priority of the servers and load generators (root: < 0)

    @property
    def mode(self) -> str:
        return "quick" if self.quick else "full"

    @property
    def results_md(self) -> Path:
        return self.output_dir / "RESULTS.md"

    @property
    def raw_json(self) -> Path:
        """Every figure of every run, as JSON (gitignored)."""
        return WORK_DIR / ("profile" if self.profile else self.mode) / "results.json"

    def run_dir(self, name: str) -> Path:
        path = WORK_DIR / "run" / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def choose_cpus() -> tuple[int | None, int | None]:
    """The server's CPU and the load generator's: the first two this process may use."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None, None
    return allowed[0], allowed[1]


def make_config(
    quick: bool, output_dir: Path | None, *, profile: bool = False, nice: int = 0
) -> BenchConfig:
    server_cpu, client_cpu = choose_cpus()
    if profile:  # one run of full length, in one slice (one profile), beside the profiles
        full = make_config(quick=False, output_dir=output_dir or WORK_DIR / "profile", nice=nice)
        return dataclasses.replace(full, runs=1, profile=True, wrk_segment=full.wrk_seconds)
    if quick:
        return BenchConfig(
            quick=True,
            runs=1,
            wrk_seconds=2,
            wrk_segment=2,
            warmup_seconds=0.5,
            driver_seconds=2.0,
            refresh_clients=8,
            refresh_races=5,
            scale_small=2_000,
            scale_large=20_000,
            prune_rows=20_000,
            audit_small=20_000,  # a page of the rarest event listed (0.5 %)
            audit_large=200_000,
            audit_listings=30,
            login_seconds=2,
            mfa_users=500,
            flood_logins=50,
            flood_idle_requests=200,
            quiet_wait_seconds=1.0,  # one look: the code path of the full run
            server_cpu=server_cpu,
            client_cpu=client_cpu,
            output_dir=output_dir or WORK_DIR / "quick",
            nice=nice,
        )
    return BenchConfig(
        quick=False,
        runs=3,
        wrk_seconds=10,
        wrk_segment=2,
        warmup_seconds=2.0,
        driver_seconds=8.0,
        refresh_clients=32,
        refresh_races=20,
        scale_small=10_000,
        scale_large=1_000_000,
        prune_rows=1_000_000,
        audit_small=100_000,
        audit_large=10_000_000,
        audit_listings=150,
        login_seconds=6,
        mfa_users=5_000,
        flood_logins=500,
        flood_idle_requests=2_000,
        quiet_wait_seconds=10.0,
        server_cpu=server_cpu,
        client_cpu=client_cpu,
        output_dir=output_dir or BENCH_DIR,
        nice=nice,
    )
