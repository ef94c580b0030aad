"""Login flood (the abuse-resistance issue): 500 concurrent logins (quick: 50) against
one server process must neither push its memory past the documented bound (README,
Bounded hashing) nor starve the requests that need no hash. The issue's reference: a
minimal fastapi-users app's `/hello` p99 goes from about 4 ms idle to 890 ms.

Per run, on a fresh server (embedded SQLite): a user is registered and logged in;
a probe (its own process, authbench/probe.py) sends `GET /whoami` at 200 requests/s,
first idle, then while all the logins are sent at once, half with a wrong password,
each on a connection of its own. The probe requests that start between the first login
sent and the last one answered are "during the flood"; that window is split at the last
503 into the refusal burst (the server taking in the flood, refusing most of it) and
after the burst (hashing what it admitted). The server's RSS and threads are sampled
every 5 ms, its CPU time and its event loop's wait for a CPU read from /proc.

A login answered with anything but 200/400/503, a 503 without Retry-After or a failed
probe request fails the scenario (the contract); speed is never judged.
"""

from __future__ import annotations

import resource
from collections import Counter
from typing import Any

import uvloop

from authbench import accounts, procfs, servers
from authbench.config import BenchConfig
from authbench.flooding import Flood, flood
from authbench.probe import Probe, Sample
from authbench.refreshing import address
from authbench.results import Figure, ScenarioResult, Target, percentile

EMAIL = "flood@example.com"
PROBE_LOOPS = 4
PROBE_RATE = 200.0  # /whoami requests per second, all loops together, idle and flood
QUIET_BUSY_SHARE = 0.25  # a machine less busy than this over a second counts as quiet
MEMORY_MARGIN_MIB = 32  # of the bound, over start-up RSS + hash_workers x argon2 memory
HASHING = (
    "argon2_memory_cost",
    "argon2_time_cost",
    "argon2_parallelism",
    "hash_workers",
    "hash_queue",
)


def describe(config: BenchConfig) -> ScenarioResult:
    return ScenarioResult(
        name="login_flood",
        title="Login flood",
        what=(
            f"{config.flood_logins} concurrent `POST /token` password grants (half with a "
            f"wrong password, a connection each) against one server on embedded SQLite, "
            f"defaults, while {PROBE_LOOPS} loops probe `GET /whoami` at {PROBE_RATE:g} "
            f"requests/s in all ({config.flood_idle_requests} requests idle first); "
            f"a fresh server per run. The burst lasts until the last 503 is answered."
        ),
        figures=[
            Figure("idle_whoami_p50_ms", "/whoami p50 idle", " ms"),
            Figure("idle_whoami_p99_ms", "/whoami p99 idle", " ms"),
            Figure("flood_whoami_p50_ms", "/whoami p50 during the flood", " ms"),
            Figure("flood_whoami_p99_ms", "/whoami p99 during the flood", " ms"),
            Figure("flood_whoami_p99_over_idle_p99", "flood ÷ idle p99"),
            Figure("flood_whoami_max_ms", "/whoami max during the flood (the stall)", " ms"),
            Figure("burst_s", "refusal burst: first login sent to last 503 answered", " s"),
            Figure("burst_whoami_p99_ms", "/whoami p99 in the refusal burst", " ms"),
            Figure("after_burst_whoami_p99_ms", "/whoami p99 after the burst (hashing)", " ms"),
            Figure("logins_200", "logins 200 (right password)"),
            Figure("logins_400", "logins 400 (wrong password)"),
            Figure("logins_503", "logins 503 (Retry-After)"),
            Figure("logins_503_hasher_busy", "503s: hasher full"),
            Figure("logins_503_database", "503s: database unavailable"),
            Figure("login_503_p50_ms", "503 answered after, p50", " ms"),
            Figure("logins_verified_per_s", "verified logins (200 + 400)", "/s"),
            Figure("login_verified_p99_ms", "verified login p99", " ms"),
            Figure("flood_wall_s", "flood, first login sent to last answered", " s"),
            Figure("startup_rss_mib", "server RSS at start-up", " MiB"),
            Figure("flood_peak_rss_mib", "server RSS peak in the flood", " MiB"),
            Figure("memory_bound_mib", "bound: start-up + workers × argon2 m + 32", " MiB"),
            Figure("peak_over_bound", "peak (RSS or VmHWM) ÷ bound"),
            Figure("flood_peak_threads", "server threads, peak"),
            Figure("event_loop_wait_share_flood", "event loop: share waiting for a CPU"),
            Figure("foreign_cpu_share_flood", "others' share of the server's CPU"),
            Figure("server_cpu_s_during_flood", "server CPU in the flood", " s"),
            Figure("client_cpu_s_during_flood", "flood client CPU", " s"),
        ],
        targets=[Target("peak_over_bound", "<=", 1)],
    )


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def mib(kib: float) -> float:
    return round(kib / 1024, 1)


def latency_figures(prefix: str, samples: list[Sample]) -> dict[str, float]:
    latencies = [latency for _, latency, status in samples if status == 200]
    return {
        f"{prefix}_requests": len(samples),
        f"{prefix}_failed": sum(1 for _, _, status in samples if status != 200),
        f"{prefix}_p50_ms": ms(percentile(latencies, 50)),
        f"{prefix}_p99_ms": ms(percentile(latencies, 99)),
        f"{prefix}_max_ms": ms(max(latencies, default=float("nan"))),
    }


def one_run(
    config: BenchConfig, server: servers.Server, hashing: dict[str, Any]
) -> tuple[dict[str, float], Flood]:
    pid = server.pid
    startup_kib = procfs.status_kib(pid, "VmRSS")  # before any password was hashed
    accounts.register(server.base_url, EMAIL)
    token = accounts.login(server.base_url, EMAIL).access_token
    sampler = procfs.RssSampler(pid)
    sampler.start()
    probe: Probe | None = None
    try:
        bearer = {"Authorization": f"Bearer {token}"}
        probe = Probe(
            address(server.base_url),
            "/whoami",
            bearer,
            loops=PROBE_LOOPS,
            rate=PROBE_RATE,
            cpu=config.client_cpu,
        )
        idle_start = procfs.Snapshot.take(pid)
        idle = probe.measure(config.flood_idle_requests, deadline=300)
        flood_start = procfs.Snapshot.take(pid)
        idle_kib, idle_threads, hwm_before = procfs.status_figures(pid, "VmRSS", "Threads", "VmHWM")
        probe.start()
        client_before = procfs.own_cpu_seconds()
        result = uvloop.run(flood(*address(server.base_url), EMAIL, config.flood_logins))
        client_cpu = procfs.own_cpu_seconds() - client_before
        during = probe.stop()
        flood_end = procfs.Snapshot.take(pid)
        rss_after, hwm_after = procfs.status_figures(pid, "VmRSS", "VmHWM")
    finally:
        sampler.stop()
        if probe is not None:
            probe.close()
    peak_kib = max(sampler.peak_kib(result.start, result.end), rss_after)

    in_flood = [sample for sample in during if result.start <= sample[0] <= result.end]
    # The burst: until the last refusal went out (or, with none, the last login was sent);
    # after it, the server only hashes the logins it admitted.
    last_sent = max((login.sent for login in result.logins), default=result.start)
    burst_end = max((x.end for x in result.logins if x.status == 503), default=last_sent)
    statuses = Counter(login.status for login in result.logins)
    reasons = Counter(x.description or "" for x in result.logins if x.status == 503)
    wall = result.end - result.start
    verified = [x.latency for x in result.logins if x.status in (200, 400)]
    refused = [x.latency for x in result.logins if x.status == 503]
    # The documented bound: what the process holds before any login, plus one argon2id
    # memory cost per hashing thread, plus a margin for sockets and allocator slack.
    bound_kib = startup_kib + hashing["hash_workers"] * hashing["argon2_memory_cost"]
    bound_kib += MEMORY_MARGIN_MIB * 1024
    idle_s, flood_s = flood_start.at - idle_start.at, flood_end.at - flood_start.at
    loop_idle = [b - a for a, b in zip(idle_start.loop, flood_start.loop, strict=True)]
    loop_flood = [b - a for a, b in zip(flood_start.loop, flood_end.loop, strict=True)]
    server_flood_s = flood_end.cpu_s - flood_start.cpu_s
    cpu = config.server_cpu
    figures: dict[str, float] = {
        **latency_figures("idle_whoami", idle),
        **latency_figures("flood_whoami", in_flood),
        **latency_figures("burst_whoami", [s for s in in_flood if s[0] <= burst_end]),
        **latency_figures("after_burst_whoami", [s for s in in_flood if s[0] > burst_end]),
        "logins": len(result.logins),
        "logins_200": statuses[200],
        "logins_400": statuses[400],
        "logins_503": statuses[503],
        "logins_other": len(result.logins) - statuses[200] - statuses[400] - statuses[503],
        "logins_503_without_retry_after": sum(
            1 for x in result.logins if x.status == 503 and not x.retry_after
        ),
        "logins_503_hasher_busy": sum(n for r, n in reasons.items() if r.startswith("Too many")),
        "logins_503_database": sum(n for r, n in reasons.items() if "database" in r),
        "flood_wall_s": round(wall, 3),
        "burst_s": round(burst_end - result.start, 3),
        "flood_last_request_sent_s": round(last_sent - result.start, 3),
        "logins_verified_per_s": round(len(verified) / wall, 1),
        "login_verified_p50_ms": ms(percentile(verified, 50)),
        "login_verified_p99_ms": ms(percentile(verified, 99)),
        "login_503_p50_ms": ms(percentile(refused, 50)),
        "login_503_p99_ms": ms(percentile(refused, 99)),
        "server_cpu_s_during_flood": round(server_flood_s, 2),
        "client_cpu_s_during_flood": round(client_cpu, 2),
        "other_threads_cpu_s_flood": round(server_flood_s - loop_flood[0], 2),
        "event_loop_cpu_share_idle": round(loop_idle[0] / idle_s, 3),
        "event_loop_wait_share_idle": round(loop_idle[1] / idle_s, 3),
        "event_loop_cpu_share_flood": round(loop_flood[0] / flood_s, 3),
        "event_loop_wait_share_flood": round(loop_flood[1] / flood_s, 3),
        "foreign_cpu_share_idle": round(
            procfs.foreign_share(
                cpu, idle_start.ticks, flood_start.ticks, flood_start.cpu_s - idle_start.cpu_s
            ),
            3,
        ),
        "foreign_cpu_share_flood": round(
            procfs.foreign_share(cpu, flood_start.ticks, flood_end.ticks, server_flood_s), 3
        ),
        "startup_rss_mib": mib(startup_kib),
        "idle_rss_mib": mib(idle_kib),
        "flood_peak_rss_mib": mib(peak_kib),
        "flood_rss_increase_mib": mib(peak_kib - idle_kib),
        "rss_after_flood_mib": mib(rss_after),
        "vmhwm_before_flood_mib": mib(hwm_before),
        "vmhwm_after_flood_mib": mib(hwm_after),
        "peak_over_startup_mib": mib(max(peak_kib, hwm_after) - startup_kib),
        "memory_bound_mib": mib(bound_kib),
        "peak_over_bound": round(max(peak_kib, hwm_after) / bound_kib, 3),
        "idle_threads": idle_threads,
        "flood_peak_threads": sampler.peak_threads(result.start, result.end),
        "rss_samples_during_flood": len(sampler.within(result.start, result.end)),
    }
    figures["flood_whoami_p99_over_idle_p99"] = round(
        figures["flood_whoami_p99_ms"] / figures["idle_whoami_p99_ms"], 2
    )
    return figures, result


def problems(figures: dict[str, float], result: Flood) -> list[str]:
    """What answered outside the contract in a run."""
    found = []
    if figures["logins_other"]:
        answers = Counter(x.error or str(x.status) for x in result.logins)
        found.append(f"logins answered outside 200/400/503: {dict(answers)}")
    if figures["logins_503_without_retry_after"]:
        found.append(f"{figures['logins_503_without_retry_after']:.0f} 503s without Retry-After")
    if figures["idle_whoami_failed"] or figures["flood_whoami_failed"]:
        found.append("some /whoami probe requests failed")
    return found


def allow_open_files(count: int) -> None:
    """A socket per login in this process, and as many in the server, which inherits
    the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < count:
        limit = count if hard == resource.RLIM_INFINITY else min(count, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))


def measure(config: BenchConfig, result: ScenarioResult) -> None:
    allow_open_files(config.flood_logins + 256)
    found: list[str] = []
    hashing: dict[str, Any] = {}
    for number in range(1, config.runs + 1):
        waited, busy = 0.0, float("nan")
        if config.quiet_wait_seconds > 0:
            waited, busy = procfs.wait_for_quiet(QUIET_BUSY_SHARE, 1.0, config.quiet_wait_seconds)
        server = servers.authapi(config, "login-flood", None)
        with servers.running(server):
            if not hashing:
                hashing = servers.authapi_settings(config, server.env, *HASHING)
                result.commands.append(server.shown())
            try:
                figures, flood_result = one_run(config, server, hashing)
            except Exception as exc:
                tail = server.log_tail()
                raise RuntimeError(f"{exc}\nserver log ({server.log_path}):\n{tail}") from exc
        figures["quiet_wait_s"] = round(waited, 1)
        figures["machine_busy_share_before_run"] = round(busy, 3)
        result.runs.append(figures)
        statuses = Counter(x.error or str(x.status) for x in flood_result.logins)
        answers = ", ".join(f"{status} × {n}" for status, n in sorted(statuses.items()))
        reasons = Counter(x.description for x in flood_result.logins if x.status == 503)
        said = "; ".join(f"{n} × “{reason}”" for reason, n in reasons.items()) or "—"
        result.notes.append(
            f"Run {number}: logins answered {answers}; the 503s said {said}; "
            f"{figures['flood_whoami_requests']:.0f} probe "
            f"requests during the flood ({figures['burst_whoami_requests']:.0f} in the burst)."
        )
        found += [f"run {number}: {problem}" for problem in problems(figures, flood_result)]
    result.commands.append(
        f"(driver) authbench/flooding.py: {config.flood_logins} logins at once over "
        f"asyncio streams on uvloop, a connection each; authbench/probe.py: "
        f"{PROBE_LOOPS} keep-alive loops of GET /whoami, {PROBE_RATE:g}/s, in a process "
        f"of its own; both on CPU {config.client_cpu}"
    )
    settings = ", ".join(f"{name}={value}" for name, value in hashing.items())
    result.notes += [
        f"The server's hashing settings (read as it reads them, pinned as it is): {settings}.",
        "Reference (the issue): a minimal fastapi-users app's `GET /hello` p99 goes from "
        "about 4 ms idle to about 890 ms during a login flood.",
        "Logins/s are the `login` scenario's figure: the flood's verified logins/s include "
        "the refusal burst. Every figure of every run, these and more, is in results.json.",
    ]
    if config.quiet_wait_seconds > 0:
        result.notes.append(
            f"Before each run the bench waited up to {config.quiet_wait_seconds:g} s for the "
            f"machine to be under {QUIET_BUSY_SHARE:.0%} busy over a second: "
            + ", ".join(f"{run['quiet_wait_s']:g} s" for run in result.runs)
            + " (`quiet_wait_s`; the busy share then: `machine_busy_share_before_run`)."
        )
    if found:
        raise RuntimeError("answers outside the contract: " + "; ".join(found))
