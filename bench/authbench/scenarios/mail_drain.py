"""Mail drain: 10,000 mails (quick: 300) queued at once while the API is under a steady
load (issue 13's benchmark; issue 15, the mail part). How fast the sender of one
`authapi serve` process empties its outbox into a local relay, whether every mail
arrives exactly once, and what the drain does to the latency of the requests the same
process answers meanwhile.

One server on a fresh PostgreSQL database, `AUTHAPI_SMTP_URL` pointing at a local SMTP
sink (aiosmtpd, a process of its own, accepting everything: authbench/smtpsink.py).
A probe (authbench/probe.py) sends `GET /whoami` at a fixed rate, idle, then through
the drain, then idle again (the baseline is both idle spells together). The mails are
queued by the bench process with authapi's own `mail/outbox.enqueue` (the verification
mail of `messages.compose`, as a sign-up sends it) in one transaction that is flushed
before the first idle spell and committed when the drain begins: all 10,000 become
visible at once, and the bench's own work of queueing them neither runs on the
server's CPU nor overlaps the probe's timing. So the
figures are the sender's and its interference with the API alone, not the cost of the
requests that would queue the mail (those are the API's own figures elsewhere). The
sender finds them at its next poll (`AUTHAPI_MAIL_POLL_INTERVAL`, 2 s): a commit in
another process does not wake it.

The sink keeps each mail's Message-ID: every queued mail must arrive exactly once (none
missing, none twice) and the outbox must hold them all as sent, or the scenario fails.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime

import uvloop
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from authapi.config import Settings
from authapi.mail.messages import MailTemplate, compose
from authapi.mail.outbox import enqueue
from authbench import accounts, postgres, procfs, servers
from authbench.config import BenchConfig
from authbench.probe import Probe, Sample
from authbench.refreshing import address
from authbench.results import Figure, ScenarioResult, Target, percentile
from authbench.smtpsink import SMTPSink

DATABASE = "authapi_bench_mail"
EMAIL = "mail-drain@example.com"
PROBE_LOOPS = 4
PROBE_RATE = 200.0  # /whoami requests per second, all loops together, idle and drain
ACCESS_TOKEN_TTL = 3600  # s: a slow drain on a busy machine outlasts the default 5 minutes
QUIET_BUSY_SHARE = 0.25  # before each run, wait a little for the machine to be this quiet
# This run's mails: each run queues its own, after the previous run's were sent.
OUTBOX_STATES = text(
    "SELECT state, count(*) FROM mail_outbox WHERE created_at >= :since GROUP BY state"
)
LINK = "https://app.example/verify#token=ev_bench-not-a-real-token"


def mails(config: BenchConfig) -> int:
    return 300 if config.quick else 10_000


def idle_requests(config: BenchConfig) -> int:
    return 200 if config.quick else 2_000


def drain_deadline(config: BenchConfig) -> float:
    return 120 if config.quick else 900


def describe(config: BenchConfig) -> ScenarioResult:
    n = mails(config)
    return ScenarioResult(
        name="mail_drain",
        title="Mail drain under load",
        what=(
            f"{n:,} mails queued at once (one transaction, `mail/outbox.enqueue` from the "
            f"bench process) into the outbox of one server on PostgreSQL whose relay is a "
            f"local SMTP sink (aiosmtpd, its own process), while {PROBE_LOOPS} loops probe "
            f"`GET /whoami` at {PROBE_RATE:g} requests/s in all ({idle_requests(config):,} "
            f"requests idle before, as many after). The drain is the first mail accepted "
            f"by the sink to the last; every Message-ID must arrive exactly once."
        ),
        figures=[
            Figure("idle_whoami_p50_ms", "/whoami p50 idle", " ms"),
            Figure("idle_whoami_p99_ms", "/whoami p99 idle", " ms"),
            Figure("drain_whoami_p50_ms", "/whoami p50 during the drain", " ms"),
            Figure("drain_whoami_p99_ms", "/whoami p99 during the drain", " ms"),
            Figure("drain_over_idle_p50", "drain ÷ idle p50"),
            Figure("drain_over_idle_p99", "drain ÷ idle p99"),
            Figure("drain_whoami_max_ms", "/whoami max during the drain", " ms"),
            Figure("mails_per_s", "sender's rate (first mail to last)", " mails/s"),
            Figure("drain_s", "drain, first mail accepted to last", " s"),
            Figure("commit_to_last_s", "queued (commit) to last mail accepted", " s"),
            Figure("mails_received", "mails received (distinct Message-IDs)"),
            Figure("mails_twice", "mails received more than once"),
            Figure("mails_missing", "mails never received"),
            Figure("smtp_connections", "SMTP connections to the sink"),
            Figure("server_cpu_ms_per_mail", "server CPU per mail (less the probe's)", " ms"),
            Figure("server_cpu_share_drain", "server CPU share during the drain"),
            Figure("sink_cpu_ms_per_mail", "sink CPU per mail", " ms"),
            Figure("event_loop_wait_share_drain", "event loop: share waiting for a CPU (drain)"),
            Figure("foreign_cpu_share_drain", "others' share of the server's CPU (drain)"),
            Figure("enqueue_s", "bench: compose and flush the mails (not timed load)", " s"),
        ],
        targets=[Target("drain_over_idle_p99", "<=", 1.2)],
    )


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def latency_figures(prefix: str, samples: list[Sample]) -> dict[str, float]:
    latencies = [latency for _, latency, status in samples if status == 200]
    return {
        f"{prefix}_requests": len(samples),
        f"{prefix}_failed": sum(1 for _, _, status in samples if status != 200),
        f"{prefix}_p50_ms": ms(percentile(latencies, 50)),
        f"{prefix}_p99_ms": ms(percentile(latencies, 99)),
        f"{prefix}_max_ms": ms(max(latencies, default=float("nan"))),
    }


async def queue(db: AsyncSession, settings: Settings, count: int, run: int) -> set[str]:
    """`count` verification mails in `db`'s transaction (flushed, not committed); their
    Message-IDs."""
    now = datetime.now(UTC)
    ids = set()
    for number in range(count):
        recipient = f"bulk{run}-{number}@example.com"
        message = compose(
            settings,
            MailTemplate.VERIFY_EMAIL,
            recipient,
            now,
            link=LINK,
            expires_in="24 hours",
        )
        ids.add(str(message["Message-ID"]))
        await enqueue(db, message, now)
    return ids


def wait_for_drain(sink: SMTPSink, expected: int, deadline: float) -> None:
    until = time.monotonic() + deadline
    while (count := sink.count()[0]) < expected:
        if time.monotonic() > until:
            raise RuntimeError(f"only {count} of {expected} mails arrived within {deadline} s")
        time.sleep(0.2)  # polling the sink's count, not timing anything


def start_probe(config: BenchConfig, server: servers.Server) -> Probe:
    """A probe with a new access token, its connections opened and warmed just now:
    uvicorn closes a keep-alive connection idle for 5 s, and queueing takes longer."""
    token = accounts.login(server.base_url, EMAIL).access_token
    return Probe(
        address(server.base_url),
        "/whoami",
        {"Authorization": f"Bearer {token}"},
        loops=PROBE_LOOPS,
        rate=PROBE_RATE,
        cpu=config.client_cpu,
    )


async def one_run(
    config: BenchConfig, server: servers.Server, sink: SMTPSink, run: int
) -> dict[str, float]:
    n = mails(config)
    run_began = datetime.now(UTC)
    settings = Settings(_env_file=None, data_dir=config.run_dir("mail-drain") / "bench")
    engine = create_async_engine(postgres.sqlalchemy_url(DATABASE))
    probe: Probe | None = None
    try:
        async with AsyncSession(engine, expire_on_commit=False) as db, db.begin():
            began = time.monotonic()
            expected = await queue(db, settings, n, run)
            enqueue_s = time.monotonic() - began
            probe = await asyncio.to_thread(start_probe, config, server)
            idle_start = procfs.Snapshot.take(server.pid)
            idle = await asyncio.to_thread(probe.measure, idle_requests(config), 300)
            idle_end = procfs.Snapshot.take(server.pid)
            sink.collect()  # the sign-up mail of the probe's user, and nothing else
            await asyncio.to_thread(probe.start)
            sink_cpu_before = procfs.cpu_seconds(sink.pid)
        drain_start = procfs.Snapshot.take(server.pid)
        committed = drain_start.at  # the transaction's end: every mail due at once
        try:
            await asyncio.to_thread(wait_for_drain, sink, n, drain_deadline(config))
        finally:
            during = await asyncio.to_thread(probe.stop)
        drain_end = procfs.Snapshot.take(server.pid)
        sink_cpu_s = procfs.cpu_seconds(sink.pid) - sink_cpu_before
        # Idle again: the baseline is taken on both sides of the drain, so that a change
        # in the machine's other work over the run weighs on both figures alike.
        after = await asyncio.to_thread(probe.measure, idle_requests(config), 300)
        async with engine.connect() as connection:
            states: dict[str, int] = dict(
                (await connection.execute(OUTBOX_STATES, {"since": run_began})).tuples().all()
            )
    finally:
        if probe is not None:
            probe.close()
        await engine.dispose()
    received = sink.collect()
    times = [at for at, _, _ in received.mails]
    first, last = min(times), max(times)
    counts = Counter(message_id for _, message_id, _ in received.mails)
    in_drain = [sample for sample in during if first <= sample[0] <= last]
    sent = states.get("sent", 0)
    unsent = sum(states.values()) - sent
    cpu = config.server_cpu
    idle_s, drain_wall_s = idle_end.at - idle_start.at, drain_end.at - drain_start.at
    idle_cpu_s, server_cpu_s = (
        idle_end.cpu_s - idle_start.cpu_s,
        drain_end.cpu_s - drain_start.cpu_s,
    )
    # The probe's own cost, at its idle rate, taken out of the server's CPU in the drain.
    probe_cpu_s = idle_cpu_s / idle_s * drain_wall_s
    figures: dict[str, float] = {
        **latency_figures("idle_whoami", idle + after),
        **latency_figures("idle_before_whoami", idle),
        **latency_figures("idle_after_whoami", after),
        **latency_figures("drain_whoami", in_drain),
        "mails_queued": n,
        "mails_received": len(counts.keys() & expected),
        "mails_twice": sum(1 for message_id, seen in counts.items() if seen > 1),
        "mails_missing": len(expected - counts.keys()),
        "mails_unexpected": len(counts.keys() - expected),
        "outbox_sent": int(sent),
        "outbox_not_sent": int(unsent),
        "smtp_connections": received.connections,
        "drain_s": round(last - first, 3),
        "commit_to_first_s": round(first - committed, 3),
        "commit_to_last_s": round(last - committed, 3),
        "mails_per_s": round((len(received.mails) - 1) / (last - first), 1),
        "server_cpu_s_drain": round(server_cpu_s, 2),
        "server_cpu_share_idle": round(idle_cpu_s / idle_s, 3),
        "server_cpu_share_drain": round(server_cpu_s / drain_wall_s, 3),
        "event_loop_wait_share_idle": round((idle_end.loop[1] - idle_start.loop[1]) / idle_s, 3),
        "event_loop_wait_share_drain": round(
            (drain_end.loop[1] - drain_start.loop[1]) / drain_wall_s, 3
        ),
        "foreign_cpu_share_idle": round(
            procfs.foreign_share(cpu, idle_start.ticks, idle_end.ticks, idle_cpu_s), 3
        ),
        "foreign_cpu_share_drain": round(
            procfs.foreign_share(cpu, drain_start.ticks, drain_end.ticks, server_cpu_s), 3
        ),
        "machine_busy_share_drain": round(procfs.busy_share(drain_start.ticks, drain_end.ticks), 3),
        "server_cpu_ms_per_mail": round((server_cpu_s - probe_cpu_s) / n * 1000, 3),
        "sink_cpu_ms_per_mail": round(sink_cpu_s / n * 1000, 3),
        "enqueue_s": round(enqueue_s, 2),
    }
    figures["drain_over_idle_p50"] = round(
        figures["drain_whoami_p50_ms"] / figures["idle_whoami_p50_ms"], 2
    )
    figures["drain_over_idle_p99"] = round(
        figures["drain_whoami_p99_ms"] / figures["idle_whoami_p99_ms"], 2
    )
    return figures


def problems(figures: dict[str, float]) -> list[str]:
    found = []
    for key in ("mails_twice", "mails_missing", "mails_unexpected", "outbox_not_sent"):
        if figures[key]:
            found.append(f"{key} = {figures[key]:g}")
    if figures["outbox_sent"] < figures["mails_queued"]:
        found.append(f"only {figures['outbox_sent']:g} mails sent in the outbox")
    if figures["idle_whoami_failed"] or figures["drain_whoami_failed"]:
        found.append("some /whoami probe requests failed")
    return found


def measure(config: BenchConfig, result: ScenarioResult) -> None:
    database_url = postgres.create_database(DATABASE)
    sink = SMTPSink(config.client_cpu)
    found: list[str] = []
    try:
        server = servers.authapi(
            config,
            "mail-drain",
            database_url,
            AUTHAPI_SMTP_URL=sink.url,
            AUTHAPI_ACCESS_TOKEN_TTL=str(ACCESS_TOKEN_TTL),
        )
        with servers.running(server):
            result.commands.append(server.shown())
            accounts.register(server.base_url, EMAIL)
            for run in range(1, config.runs + 1):
                waited, busy = 0.0, float("nan")
                if config.quiet_wait_seconds > 0:
                    waited, busy = procfs.wait_for_quiet(
                        QUIET_BUSY_SHARE, 1.0, config.quiet_wait_seconds
                    )
                try:
                    figures = uvloop.run(one_run(config, server, sink, run))
                except Exception as exc:
                    lines = server.log_tail(400).splitlines()
                    tail = "\n".join([x for x in lines if "authapi.access" not in x][-25:])
                    raise RuntimeError(f"{exc}\nserver log ({server.log_path}):\n{tail}") from exc
                figures["quiet_wait_s"] = round(waited, 1)
                figures["machine_busy_share_before_run"] = round(busy, 3)
                result.runs.append(figures)
                found += [f"run {run}: {problem}" for problem in problems(figures)]
                result.notes.append(
                    f"Run {run}: {figures['mails_received']:,.0f} of "
                    f"{figures['mails_queued']:,.0f} mails over "
                    f"{figures['smtp_connections']:,.0f} SMTP connections; the first "
                    f"arrived {figures['commit_to_first_s']:g} s after the commit; "
                    f"{figures['drain_whoami_requests']:,.0f} probe requests in the drain."
                )
    finally:
        sink.close()
        postgres.drop_database(DATABASE)
    result.commands.append(
        f"(driver) authbench/smtpsink.py: aiosmtpd on uvloop, its own process; "
        f"authbench/probe.py: {PROBE_LOOPS} keep-alive loops of GET /whoami, "
        f"{PROBE_RATE:g}/s, its own process; the mails queued by the bench process "
        f"(SQLAlchemy + asyncpg, `authapi.mail.outbox.enqueue`); all on CPU {config.client_cpu}"
    )
    result.notes.append(
        "Server CPU per mail: the server's CPU time over the drain, less what the probe "
        "cost it per second while idle, divided by the mails. Every figure of every run "
        "is in results.json."
    )
    if found:
        raise RuntimeError("; ".join(found))
