"""Audit at scale: the admin's audit listings on a table of 10,000,000 events against
one of 100,000 (quick: 200,000 against 20,000), and `authapi prune` of the oldest
~15 % of the large one. Each table filled once, in one statement (ids growing with
time over a year, a mix of events and users; indexes built afterwards), migrated by
authapi itself. Listings: the queries of `GET /admin/audit` (authapi's own
`audit.service.list_events` on its own engine), each timed in turn on the two sizes;
target: p50 ratio large ÷ small <= 1.2 ("stays flat", issue 15). Prune: the real
command at a retention of 310 days, its longest statement and transaction read from
PostgreSQL's log as in the prune scenario; target <= 1 s each. After a prune the
deleted rows are put back, so that every run starts from the same table."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from authapi import migrate
from authapi.audit import service
from authapi.audit.service import Event
from authapi.config import Settings
from authapi.db import create_engine, create_sessionmaker
from authbench import audit_rows, postgres, servers
from authbench.config import VENV_BIN, BenchConfig
from authbench.results import Figure, ScenarioResult, Target, percentile
from authbench.scenarios.prune import read_log

SMALL_DB = "authapi_bench_audit_small"
LARGE_DB = "authapi_bench_audit_large"
DAYS = 365  # of events in each table
RETENTION_DAYS = 310  # so that prune takes the oldest 55 of 365 days: about 15 %
WARMUP = 5  # calls of each listing on each size before the timed ones
PAGE = 50  # the listing's default limit


@dataclass(frozen=True)
class Listing:
    key: str
    label: str  # the admin's request
    arguments: Callable[[int], dict[str, Any]]  # of the table's size


def _day_ago(_size: int) -> dict[str, Any]:
    return {"since": datetime.now(UTC) - timedelta(days=1)}


LISTINGS = (
    Listing("newest", "GET /admin/audit", lambda size: {}),
    # The next page: `before` is the last id of the newest page (ids are 1..size).
    Listing("next_page", "?before=<next_before>", lambda size: {"before": size - 49}),
    Listing("deep_page", "?before=<an id half-way back>", lambda size: {"before": size // 2}),
    Listing(
        "by_user",
        "?user_id=<a user>",
        lambda size: {"user_id": postgres.row_id("user", 1)},
    ),
    Listing("by_event", "?event=login_failed (8 %)", lambda size: {"event": Event.LOGIN_FAILED}),
    Listing(
        "rare_event",
        "?event=password_changed (0.5 %)",
        lambda size: {"event": Event.PASSWORD_CHANGED},
    ),
    Listing("last_day", "?since=<a day ago>", _day_ago),
)


def describe(config: BenchConfig) -> ScenarioResult:
    small, large = f"{config.audit_small:,}", f"{config.audit_large:,}"
    figures = []
    for listing in LISTINGS:
        figures += [
            Figure(f"{listing.key}_small_ms", f"`{listing.label}` p50, {small} events", " ms"),
            Figure(f"{listing.key}_large_ms", f"`{listing.label}` p50, {large} events", " ms"),
            Figure(f"{listing.key}_ratio", f"`{listing.label}` p50 ratio large ÷ small"),
        ]
    figures += [
        Figure("prune_rows", f"audit events pruned of {large}"),
        Figure("prune_s", "authapi prune, total", " s"),
        Figure("longest_statement_ms", "prune: longest statement", " ms"),
        Figure("longest_transaction_ms", "prune: longest transaction (BEGIN..COMMIT)", " ms"),
        Figure("fill_large_s", f"bulk insert of {large} events, indexes, VACUUM", " s"),
    ]
    return ScenarioResult(
        name="audit_scale",
        title="Audit at scale",
        what=(
            f"The audit listings of `GET /admin/audit` (50 events, newest first) on "
            f"{large} vs {small} events over {DAYS} days (PostgreSQL), "
            f"{config.audit_listings} calls of each per size taken in turn; then "
            f"`authapi prune` at AUTHAPI_AUDIT_RETENTION_DAYS={RETENTION_DAYS} over the "
            f"{large} (the oldest ~15 %)."
        ),
        figures=figures,
        targets=[
            *(Target(f"{listing.key}_ratio", "<=", 1.2) for listing in LISTINGS),
            Target("longest_statement_ms", "<=", 1000),
            Target("longest_transaction_ms", "<=", 1000),
        ],
    )


@dataclass(frozen=True)
class Table:
    name: str  # small or large
    database: str
    size: int
    newest: datetime  # the time of its newest event (id `size`)


def fill(table: Table) -> float:
    """Migrated by authapi, then filled: the seconds the filling took."""
    migrate.upgrade(postgres.sqlalchemy_url(table.database))
    started = time.monotonic()
    with postgres.indexes_built_after(table.database, "audit_events"):
        audit_rows.fill_audit_events(table.database, 1, table.size, table.size, table.newest, DAYS)
    return time.monotonic() - started


def time_listings(tables: list[Table], calls: int) -> dict[str, list[float]]:
    """Seconds of each call of each listing, by `<listing>_<table>`: each call on one
    table followed by the same call on the other, so that the rest of the machine
    weighs on both alike."""

    async def run() -> dict[str, list[float]]:
        urls = [postgres.sqlalchemy_url(table.database) for table in tables]
        engines = [create_engine(Settings(_env_file=None, database_url=url)) for url in urls]
        makers = [create_sessionmaker(engine) for engine in engines]
        latencies: dict[str, list[float]] = {}
        try:
            for listing in LISTINGS:
                for number in range(WARMUP + calls):
                    for table, maker in zip(tables, makers, strict=True):
                        arguments = listing.arguments(table.size)
                        async with maker() as db:
                            started = time.perf_counter()
                            rows = await service.list_events(db, limit=PAGE, **arguments)
                            elapsed = time.perf_counter() - started
                        if len(rows) != PAGE:  # a short page would flatter the table
                            raise RuntimeError(f"{listing.key}, {table.name}: {len(rows)} events")
                        if number >= WARMUP:
                            latencies.setdefault(f"{listing.key}_{table.name}", []).append(elapsed)
        finally:
            for engine in engines:
                await engine.dispose()
        return latencies

    return asyncio.run(run())


def listing_figures(latencies: dict[str, list[float]]) -> dict[str, float]:
    figures: dict[str, float] = {}
    for listing in LISTINGS:
        small = percentile(latencies[f"{listing.key}_small"], 50) * 1000
        large = percentile(latencies[f"{listing.key}_large"], 50) * 1000
        figures[f"{listing.key}_small_ms"] = round(small, 3)
        figures[f"{listing.key}_large_ms"] = round(large, 3)
        figures[f"{listing.key}_ratio"] = round(large / small, 3)
    return figures


def prune(config: BenchConfig, table: Table, result: ScenarioResult) -> dict[str, float]:
    """`authapi prune` at RETENTION_DAYS, timed by PostgreSQL's log; then the deleted
    events are put back (the oldest ids: ids grow with time) and the table vacuumed."""
    log = postgres.log_file()
    if log is None:
        raise RuntimeError("PostgreSQL's log file was not found under /var/log/postgresql")
    cwd = config.run_dir(table.database)  # the tests' own when they run beside a bench
    env = servers.authapi_env(
        cwd / "data",
        postgres.sqlalchemy_url(table.database),
        AUTHAPI_AUDIT_RETENTION_DAYS=str(RETENTION_DAYS),
    )
    command = servers.pinned([str(VENV_BIN / "authapi"), "prune"], config.server_cpu)
    postgres.execute(table.database, "CHECKPOINT")  # not during the measured run
    postgres.set_database_option(table.database, "log_min_duration_statement", "0")
    offset = Path(log).stat().st_size
    # Whatever was older than the retention when the command started must be gone.
    cutoff = datetime.now(UTC) - timedelta(days=RETENTION_DAYS)
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, env=env, cwd=cwd, capture_output=True, text=True, timeout=3600
        )
    finally:
        postgres.set_database_option(table.database, "log_min_duration_statement", None)
    total = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"authapi prune failed ({done.returncode}): {done.stderr[-2000:]}")
    pruned = int(done.stdout.split(" audit events")[0].rsplit("deleted ", 1)[1])
    left, oldest = postgres.fetchall(table.database, "SELECT count(*), min(id) FROM audit_events")[
        0
    ]
    expired = postgres.fetchval(
        table.database, "SELECT count(*) FROM audit_events WHERE at < $1", cutoff
    )
    if left + pruned != table.size or oldest != pruned + 1 or expired:
        raise RuntimeError(f"prune: {done.stdout!r}; {left} left from {oldest}, {expired} expired")
    log_figures = read_log(Path(log), offset, table.database)
    if not result.commands or "prune" not in result.commands[-1]:
        result.commands.append(
            f"AUTHAPI_AUDIT_RETENTION_DAYS={RETENTION_DAYS} AUTHAPI_DATABASE_URL="
            f"{env['AUTHAPI_DATABASE_URL']} {' '.join(command)}"
        )
    audit_rows.fill_audit_events(table.database, 1, pruned, table.size, table.newest, DAYS)
    postgres.execute(table.database, "VACUUM (ANALYZE) audit_events")
    return {
        "prune_rows": pruned,
        "prune_s": round(total, 2),
        "longest_statement_ms": round(log_figures.longest_statement_ms, 1),
        "longest_transaction_ms": round(log_figures.longest_transaction_ms, 1),
    }


def measure(config: BenchConfig, result: ScenarioResult) -> None:
    measure_on(config, result, SMALL_DB, LARGE_DB)


def measure_on(config: BenchConfig, result: ScenarioResult, small_db: str, large_db: str) -> None:
    """`measure` on databases of these names (the tests use their own)."""
    with postgres.fresh_database(small_db), postgres.fresh_database(large_db):
        now = datetime.now(UTC)
        tables = [
            Table("small", small_db, config.audit_small, now),
            Table("large", large_db, config.audit_large, now),
        ]
        fill(tables[0])
        fill_large = fill(tables[1])
        for _ in range(config.runs):
            figures = listing_figures(time_listings(tables, config.audit_listings))
            figures.update(prune(config, tables[1], result))
            figures["fill_large_s"] = round(fill_large, 1)
            result.runs.append(figures)
    result.commands.insert(
        0,
        "(driver) authbench/scenarios/audit_scale.py: authapi.audit.service.list_events "
        f"(limit {PAGE}) on authapi's engine, one call at a time, on the two databases "
        "in turn",
    )
    result.notes.append(
        f"Bulk audit events: ids 1..N over {DAYS} days (the newest now), events drawn "
        f"from {len(audit_rows.AUDIT_MIX)} kinds (60 % refresh), by one user of "
        f"N / {audit_rows.EVENTS_PER_USER:,} users each; secondary indexes built after "
        "the fill, then VACUUM ANALYZE. After each prune the deleted events are put back "
        "and the table vacuumed."
    )
