"""Prune: `authapi prune` over 1,000,000 expired sessions (quick: 20,000), plus 1,000
active ones that must survive. Total time of the real command, and the longest single
statement and the longest transaction, from PostgreSQL's own log: the bench database
gets `log_min_duration_statement = 0` for the command's run (ALTER DATABASE ... SET,
so only connections to that database log), and the lines of its run are read back
from the server's log file. Target (issue 6): no statement holding locks > 1 s."""

from __future__ import annotations

import re
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from authbench import postgres, servers
from authbench.config import VENV_BIN, BenchConfig
from authbench.results import Figure, ScenarioResult, Target

DATABASE = "authapi_bench_prune"
KEEP = 1_000
# Debian's log_line_prefix is '%m [%p] %q%u@%d ': time, pid, user@database.
_LINE = re.compile(
    r"^(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) \S+ \[(?P<pid>\d+)\] \S*@(?P<db>\S+) "
    r"LOG:  duration: (?P<ms>[\d.]+) ms  (?P<kind>statement|execute[^:]*|parse[^:]*|bind[^:]*): "
    r"(?P<sql>.*)$"
)


def describe(config: BenchConfig) -> ScenarioResult:
    rows = f"{config.prune_rows:,}"
    return ScenarioResult(
        name="prune",
        title="Prune",
        what=(
            f"`authapi prune` (batches of 1,000, one transaction each) over {rows} expired "
            f"sessions and {KEEP:,} active ones, PostgreSQL; the table refilled "
            f"(TRUNCATE, bulk insert) before each run."
        ),
        figures=[
            Figure("total_s", "authapi prune, total", " s"),
            Figure("rows_per_s", "sessions deleted", "/s"),
            Figure("longest_statement_ms", "longest statement", " ms"),
            Figure("longest_transaction_ms", "longest transaction (BEGIN..COMMIT)", " ms"),
            Figure("delete_p50_ms", "DELETE batch p50", " ms"),
            Figure("batches", "DELETE statements"),
        ],
        targets=[
            Target("longest_statement_ms", "<=", 1000),
            Target("longest_transaction_ms", "<=", 1000),
        ],
    )


@dataclass
class LogFigures:
    longest_statement_ms: float
    longest_transaction_ms: float
    deletes: list[float]


def read_log(path: Path, offset: int, database: str) -> LogFigures:
    """The durations of `database`'s statements logged after `offset`, and its
    transactions' spans (BEGIN logged .. COMMIT logged, per backend)."""
    with path.open("rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    longest = 0.0
    longest_transaction = 0.0
    began: dict[str, datetime] = {}
    deletes: list[float] = []
    kinds: dict[str, int] = defaultdict(int)
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None or match["db"] != database:
            continue
        duration = float(match["ms"])
        sql = match["sql"].strip().upper()
        at = datetime.strptime(match["at"], "%Y-%m-%d %H:%M:%S.%f")
        kinds[match["kind"].split()[0]] += 1
        if match["kind"].startswith(("parse", "bind")):
            continue
        longest = max(longest, duration)
        if sql.startswith("BEGIN"):
            began[match["pid"]] = at
        elif sql.startswith(("COMMIT", "ROLLBACK")) and match["pid"] in began:
            span = (at - began.pop(match["pid"])).total_seconds() * 1000
            longest_transaction = max(longest_transaction, span)
        elif sql.startswith("DELETE"):
            deletes.append(duration)
    if not deletes:
        raise RuntimeError(
            f"no DELETE of {database} in {path} after byte {offset} ({dict(kinds)}): is "
            "log_line_prefix Debian's '%m [%p] %q%u@%d '?"
        )
    return LogFigures(longest, longest_transaction, deletes)


def measure(config: BenchConfig, result: ScenarioResult) -> None:
    try:
        _measure(config, result)
    finally:
        postgres.drop_database(DATABASE)


def _measure(config: BenchConfig, result: ScenarioResult) -> None:
    log = postgres.log_file()
    if log is None:
        raise RuntimeError("PostgreSQL's log file was not found under /var/log/postgresql")
    url = postgres.create_database(DATABASE)
    cwd = config.run_dir("prune")
    env = servers.authapi_env(cwd / "data", url)
    authapi = str(VENV_BIN / "authapi")
    subprocess.run([authapi, "migrate"], env=env, cwd=cwd, check=True, capture_output=True)
    postgres.fill_users(DATABASE)
    command = servers.pinned([authapi, "prune"], config.server_cpu)
    for _ in range(config.runs):
        postgres.fetchval(DATABASE, "TRUNCATE sessions, audit_events")
        postgres.fill_sessions(DATABASE, 1, config.prune_rows, expired=True)
        postgres.fill_sessions(
            DATABASE, config.prune_rows + 1, config.prune_rows + KEEP, expired=False
        )
        postgres.fetchval(DATABASE, "CHECKPOINT")  # not during the measured run
        postgres.set_database_option(DATABASE, "log_min_duration_statement", "0")
        offset = Path(log).stat().st_size
        started = time.monotonic()
        try:
            done = subprocess.run(
                command, env=env, cwd=cwd, capture_output=True, text=True, timeout=1800
            )
        finally:
            postgres.set_database_option(DATABASE, "log_min_duration_statement", None)
        total = time.monotonic() - started
        if done.returncode != 0:
            raise RuntimeError(f"authapi prune failed ({done.returncode}): {done.stderr[-2000:]}")
        expected = f"deleted {config.prune_rows} ended sessions"
        left = postgres.fetchval(DATABASE, "SELECT count(*) FROM sessions")
        if expected not in done.stdout or left != KEEP:
            raise RuntimeError(f"prune: {done.stdout!r}, {left} sessions left (want {KEEP})")
        figures = read_log(Path(log), offset, DATABASE)
        deletes = sorted(figures.deletes)
        result.runs.append(
            {
                "total_s": round(total, 2),
                "rows_per_s": round(config.prune_rows / total),
                "longest_statement_ms": round(figures.longest_statement_ms, 1),
                "longest_transaction_ms": round(figures.longest_transaction_ms, 1),
                "delete_p50_ms": round(deletes[len(deletes) // 2], 2),
                "batches": len(deletes),
            }
        )
    result.commands += [
        "ALTER DATABASE authapi_bench_prune SET log_min_duration_statement = 0",
        " ".join(f"{k}={v}" for k, v in env.items() if k == "AUTHAPI_DATABASE_URL")
        + " "
        + " ".join(command),
        f"(then the lines of that database read back from {log})",
    ]
    result.notes.append(
        "Durations are PostgreSQL's own (log_min_duration_statement = 0 logs every "
        "statement with its duration; the log's timestamps have millisecond precision). "
        "pg_stat_statements is available but not preloaded on this server, so it was "
        "not used. The total includes the command's start-up (about 1 s of imports)."
    )
