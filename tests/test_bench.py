"""The benchmark suite's code (bench/authbench), so that it cannot rot between the
recorded runs: CI's `scripts/bench --quick` runs every scenario once; these run with
the tests. Speed is never asserted, only that the figures are measured.

The `mfa` scenario and the refresh races run on PostgreSQL only, as the suite does (the
TOTP users are copied in bulk with asyncpg)."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
from pathlib import Path

import asyncpg
import pyotp
import pytest
from authbench import accounts, pgbouncer, postgres, racing, refreshing, servers, slicing
from authbench.config import ADMIN_DSN, BENCH_DIR, make_config
from authbench.factors import STEP_SECONDS, TotpUser
from authbench.httpload import Connection, LoadResult, Step, paced_loop
from authbench.logins import TotpPool
from authbench.machine import cpu_ticks, facts, stolen_share
from authbench.report import render
from authbench.results import ScenarioResult
from authbench.scenarios import SCENARIOS, audit_scale, mfa, pooler, refresh

DATABASE = "authapi_bench_test_mfa"  # not the scenario's: a benchmark may be running
RACE_DATABASE = "authapi_bench_test_race"
REFRESH_DATABASE = "authapi_bench_test_refresh"
AUDIT_DATABASES = ("authapi_bench_test_audit_small", "authapi_bench_test_audit_large")
POOLER_DATABASE = "authapi_bench_test_pooler"
EXISTS = "SELECT count(*) FROM pg_database WHERE datname = $1"


def the_one_run(result: ScenarioResult, *, zero_allowed: bool = False) -> dict[str, float]:
    """A quick scenario's only run, holding every figure it describes, each finite and
    positive (or zero, where a figure may be: connections opened under load)."""
    (run,) = result.runs
    assert set(run) == {figure.key for figure in result.figures}
    assert all(
        math.isfinite(value) and (value >= 0 if zero_allowed else value > 0)
        for value in run.values()
    ), run
    return run


class TestScenarioTable:
    def test_every_scenario_module_is_run_and_described(self) -> None:
        modules = {path.stem for path in (BENCH_DIR / "authbench" / "scenarios").glob("*.py")}
        assert modules - {"__init__"} == set(SCENARIOS)
        readme = (BENCH_DIR / "README.md").read_text()
        described = set(re.findall(r"^\| `(\w+)` \|", readme, re.MULTILINE))
        assert set(SCENARIOS) <= described


class StepClock:
    """Unix time, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0 + 1  # one second into a step

    def __call__(self) -> float:
        return self.now


def totp_users(count: int, spent_step: int = -1) -> list[TotpUser]:
    return [
        TotpUser(f"u{n}@example.com", pyotp.TOTP(pyotp.random_base32()), spent_step)
        for n in range(count)
    ]


class TestTotpPool:
    def test_lends_each_user_once_a_step(self) -> None:
        clock = StepClock()
        pool = TotpPool(totp_users(2), clock)
        lent = [pool.take(), pool.take()]
        assert {user.email for user, _ in lent} == {"u0@example.com", "u1@example.com"}
        assert {step for _, step in lent} == {int(clock.now) // STEP_SECONDS}
        clock.now += STEP_SECONDS - 2  # the same step, its last second
        with pytest.raises(RuntimeError, match="all 2 TOTP users"):
            pool.take()

    def test_the_next_step_lends_them_again(self) -> None:
        clock = StepClock()
        pool = TotpPool(totp_users(1), clock)
        _, first = pool.take()
        clock.now += STEP_SECONDS
        user, second = pool.take()
        assert (user.email, second) == ("u0@example.com", first + 1)
        assert pool.lent == 2

    def test_not_in_the_step_that_turned_totp_on(self) -> None:
        clock = StepClock()
        step = int(clock.now) // STEP_SECONDS
        pool = TotpPool(totp_users(1, spent_step=step), clock)
        with pytest.raises(RuntimeError):
            pool.take()
        clock.now += STEP_SECONDS
        assert pool.take()[1] == step + 1


class TestMfaScenario:
    def test_measures_every_figure_against_a_real_server(self, tmp_path: Path) -> None:
        """The whole scenario at the smallest sizes: a server on PostgreSQL, users with
        TOTP (one over HTTP, the rest copied) and passkeys, each kind of login."""
        config = dataclasses.replace(
            make_config(quick=True, output_dir=tmp_path),
            login_seconds=1,
            wrk_segment=1,
            warmup_seconds=0.2,
            mfa_users=60,
        )
        result = mfa.describe(config)
        mfa.measure_on(config, result, DATABASE, "test-mfa")
        the_one_run(result)
        assert "AUTHAPI_APP_URL" in result.commands[0]
        assert postgres.fetchval("postgres", EXISTS, DATABASE) == 0  # dropped


class TestPacedLoop:
    def test_a_request_waiting_for_a_free_client_counts_from_when_it_was_due(self) -> None:
        """One client slower than the pace: the requests queue for it, one at a time,
        and each one's latency holds its wait (a closed loop would hide it)."""
        running: list[int] = []

        async def slow_step() -> None:
            running.append(1)
            assert len(running) == 1  # never two at once on one client
            await asyncio.sleep(0.05)  # a server slower than the 10 ms pace
            running.pop()

        result = asyncio.run(paced_loop([slow_step], rate=100, warmup=0, duration=0.2))
        assert len(result.latencies) == result.done == 20  # due at 0, 10 ms, ... 190 ms
        # The k-th (from 0) waited for k slow steps before its own: at least
        # k x 50 ms from its start, less its k x 10 ms later due time.
        assert all(latency >= 0.04 * k + 0.05 for k, latency in enumerate(result.latencies))

    def test_takes_the_clients_in_turn(self) -> None:
        """None left idle while others work: the server's keep-alive timeout would have
        closed its connection by the time it is taken."""
        taken: list[int] = []

        def client(number: int) -> Step:
            async def step() -> None:
                taken.append(number)

            return step

        asyncio.run(paced_loop([client(n) for n in range(4)], rate=100, warmup=0, duration=0.2))
        assert taken == [0, 1, 2, 3] * 5


class TestRefreshScenario:
    def test_measures_refreshes_beside_healthz_and_the_ceiling(self, tmp_path: Path) -> None:
        """The whole scenario at the smallest sizes: refreshes and `/healthz` of one
        server taken in turn, then the raw asyncpg ceiling; the ratio to `/healthz` has
        its target (issue 15) beside the ceiling's."""
        config = dataclasses.replace(
            make_config(quick=True, output_dir=tmp_path),
            warmup_seconds=0.2,
            driver_seconds=0.5,
            refresh_clients=4,
        )
        result = refresh.describe(config)
        refresh.measure_on(config, result, REFRESH_DATABASE, "test-refresh")
        run = the_one_run(result)
        # Quotients of the unrounded figures: those of the rounded ones, to about 0.001.
        healthz_ratio = run["authapi_rps"] / run["healthz_rps"]
        assert run["healthz_ratio"] == pytest.approx(healthz_ratio, abs=0.002)
        assert run["ratio"] == pytest.approx(run["authapi_rps"] / run["ceiling_rps"], abs=0.002)
        assert {(target.key, target.op, target.threshold) for target in result.targets} == {
            ("ratio", ">=", 0.5),
            ("authapi_p99_ms", "<", 50),
            ("healthz_ratio", ">=", 0.25),
        }
        assert postgres.fetchval("postgres", EXISTS, REFRESH_DATABASE) == 0  # dropped


class TestAuditScaleScenario:
    def test_lists_and_prunes_at_both_sizes(self, tmp_path: Path) -> None:
        """The whole scenario at small sizes: both tables filled and migrated, every
        listing timed on each, `authapi prune` run and read back from PostgreSQL's log,
        the pruned events put back; the figures and their targets reported."""
        config = dataclasses.replace(
            make_config(quick=True, output_dir=tmp_path),
            audit_small=20_000,
            audit_large=40_000,
            audit_listings=3,
        )
        result = audit_scale.describe(config)
        audit_scale.measure_on(config, result, *AUDIT_DATABASES)
        run = the_one_run(result)
        # About 55 of the 365 days are older than the retention of 310.
        assert 0.14 < run["prune_rows"] / 40_000 < 0.16
        for listing in audit_scale.LISTINGS:
            ratio = run[f"{listing.key}_large_ms"] / run[f"{listing.key}_small_ms"]
            assert run[f"{listing.key}_ratio"] == pytest.approx(ratio, rel=0.01)
        assert ("longest_statement_ms", "<=", 1000) in {
            (target.key, target.op, target.threshold) for target in result.targets
        }
        assert any("authapi prune" in command for command in result.commands)
        for database in AUDIT_DATABASES:
            assert postgres.fetchval("postgres", EXISTS, database) == 0  # dropped


class TestPoolerScenario:
    def test_measures_refreshes_direct_and_through_pgbouncer(self, tmp_path: Path) -> None:
        """The quick scenario at the smallest sizes: a server on PostgreSQL and one
        through a real PgBouncer, on one database, in turn; every refresh of both took
        the one-statement path (it works through a transaction pooler)."""
        config = dataclasses.replace(
            make_config(quick=True, output_dir=tmp_path),
            warmup_seconds=0.2,
            driver_seconds=0.5,
            refresh_clients=4,
        )
        result = pooler.describe(config)
        pooler.measure_on(config, result, POOLER_DATABASE, "test-pooler", pooler.ways(config))
        run = the_one_run(result, zero_allowed=True)
        for way in ("direct", "pooled"):
            assert run[f"{way}_rps"] > 0
            assert run[f"{way}_one_statement_share"] == 1.0
        assert run["pooled_ratio"] == pytest.approx(
            run["pooled_rps"] / run["direct_rps"], abs=0.002
        )
        direct, pooled = result.commands[:2]
        assert "AUTHAPI_DATABASE_POOLER" not in direct
        assert "AUTHAPI_DATABASE_POOLER=transaction" in pooled
        assert "AUTHAPI_LISTEN_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/" in pooled
        assert postgres.fetchval("postgres", EXISTS, POOLER_DATABASE) == 0  # dropped

    def test_full_mode_adds_the_setting_alone(self, tmp_path: Path) -> None:
        full = pooler.describe(make_config(quick=False, output_dir=tmp_path))
        keys = {figure.key for figure in full.figures}
        assert {"direct_tx_rps", "setting_ratio", "hop_ratio"} <= keys
        assert pooler.ways(make_config(quick=True, output_dir=tmp_path)) == (
            pooler.DIRECT,
            pooler.POOLED,
        )


class TestPgBouncer:
    def test_passes_connections_through_to_postgresql(self) -> None:
        async def port_of_server(url: str) -> str:
            connection = await asyncpg.connect(url, statement_cache_size=0)
            try:
                return str(await connection.fetchval("SELECT current_setting('port')"))
            finally:
                await connection.close()

        with pgbouncer.running(ADMIN_DSN, 2) as bouncer:
            url = bouncer.through(postgres.dsn("postgres"))
            assert url == f"postgresql://postgres@127.0.0.1:{bouncer.port}/postgres"
            # Connected to PgBouncer's port, answered by PostgreSQL on its own.
            assert asyncio.run(port_of_server(url)) == "5432"
            assert "pool_mode = transaction" in (bouncer.folder / "pgbouncer.ini").read_text()
            process = bouncer.process
        assert process.poll() is not None  # stopped
        assert not bouncer.folder.exists()

    def test_refuses_to_start_without_pgbouncer(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(pgbouncer, "PGBOUNCER", Path("/nonexistent/pgbouncer"))
        with (
            pytest.raises(pgbouncer.PgBouncerMissing, match="PgBouncer is missing"),
            pgbouncer.running(ADMIN_DSN, 2),
        ):
            pass


class CountedLoad(slicing.SlicedLoad):
    """A load whose every slice is `per_second` requests a second of 1 ms each,
    noting the order in which the slices ran."""

    def __init__(self, name: str, per_second: int, order: list[str]) -> None:
        super().__init__()
        self.name, self.per_second_of_slice, self.order = name, per_second, order

    def _run(self, warmup: float, seconds: float) -> LoadResult:
        self.order.append(f"{self.name}{'-warm' if warmup else ''}")
        count = round(self.per_second_of_slice * seconds)
        return LoadResult(seconds=seconds, latencies=[0.001] * count)


class TestAlternating:
    def test_slices_taken_in_turn_and_summed(self) -> None:
        order: list[str] = []
        a, b = CountedLoad("a", 100, order), CountedLoad("b", 10, order)
        a.warm_up(1.0)
        a.run(5.0)  # measured before: forgotten by alternating
        slicing.alternating([a, b], seconds=8.0, segment=2.0)
        assert order == ["a-warm", "a", "a", "b", "a", "b", "a", "b", "a", "b"]
        assert (a.seconds, b.seconds) == (8.0, 8.0)
        assert (a.per_second, b.per_second) == (100.0, 10.0)
        assert a.ms(99) == 1.0

    def test_one_slice_when_the_load_is_shorter_than_a_slice(self) -> None:
        order: list[str] = []
        a, b = CountedLoad("a", 10, order), CountedLoad("b", 10, order)
        slicing.alternating([a, b], seconds=0.5, segment=2.0)
        assert order == ["a", "b"]
        assert (a.seconds, b.seconds) == (0.5, 0.5)


class TestConnectionWithoutKeepAlive:
    async def test_reconnects_after_connection_close(self) -> None:
        """A server that answers `Connection: close` and hangs up (gunicorn's sync
        workers): the next request on the same client goes over a new connection."""
        accepted = 0

        async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal accepted
            accepted += 1
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer_once, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        connection = Connection("127.0.0.1", port)
        try:
            answers = [await connection.request("GET", "/") for _ in range(3)]
        finally:
            await connection.close()
            server.close()
            await server.wait_closed()
        assert answers == [(200, b"ok")] * 3
        assert accepted == 3


class TestRefreshRaces:
    def test_authapi_gives_both_callers_one_successor(self, tmp_path: Path) -> None:
        """The race of the peer_simplejwt scenario against a real server: two refreshes
        of one token at once both succeed within the grace window, with the same new
        token, and the session goes on from it (one live successor, never two)."""
        config = make_config(quick=True, output_dir=tmp_path)
        server = servers.authapi(config, "test-race", postgres.create_database(RACE_DATABASE))
        try:
            with servers.running(server):
                accounts.register(server.base_url, "race@example.com")
                token = accounts.login(server.base_url, "race@example.com").refresh_token
                summary = racing.race(server.base_url, refreshing.AUTHAPI, token, 3)
        finally:
            postgres.drop_database(RACE_DATABASE)
        assert summary == racing.RaceSummary(
            races=3, both_succeeded=3, two_live=0, statuses={"200+200": 3}
        )
        assert summary.figures("authapi") == {"authapi_both_ok": 3.0, "authapi_two_live": 0.0}


class TestStolenCpu:
    """RESULTS.md says how much CPU time the hypervisor took during each scenario, and
    says it at the top past NOISY_STEAL: a run on a stalled machine must not read as the
    code's figures."""

    def test_the_share_is_of_all_the_ticks_between_two_readings(self) -> None:
        assert stolen_share((10, 1000), (30, 1400)) == pytest.approx(0.05)
        assert math.isnan(stolen_share((3, 500), (3, 500)))

    def test_reads_this_machines_counters(self) -> None:
        stolen, total = cpu_ticks()
        assert 0 <= stolen <= total
        assert total > 0

    def test_the_report_names_the_scenarios_it_stalled(self, tmp_path: Path) -> None:
        config = make_config(quick=True, output_dir=tmp_path)
        machine = facts()

        def scenario(name: str, stolen: float) -> ScenarioResult:
            return ScenarioResult(name, name, "what", figures=[], stolen_share=stolen)

        def rendered(*results: ScenarioResult) -> str:
            loads = [f"{result.name}: 0.10 0.10 0.10" for result in results]
            return render(config, machine, results, loads, "scripts/bench", 60.0)

        noisy = rendered(scenario("login_flood", 0.2), scenario("refresh", 0.01))
        head = noisy.split("## Summary")[0]
        assert "**The hypervisor took CPU time from this machine** during login_flood (20.0 %)" in (
            head
        )
        assert "refresh" not in head
        assert "during each scenario: login_flood 20.0 %; refresh 1.0 %" in noisy

        quiet = rendered(scenario("refresh", 0.01))
        assert "hypervisor took" not in quiet
