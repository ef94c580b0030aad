"""What /proc says about a server while it is measured: its memory (VmRSS, VmHWM) and
threads, its CPU time, how long its event loop waited for a CPU, and how busy the
machine's CPUs were meanwhile (other work on a shared machine shows there)."""

from __future__ import annotations

import contextlib
import os
import resource
import threading
import time
from dataclasses import dataclass
from pathlib import Path

CpuTicks = dict[int, tuple[int, int]]  # CPU number -> (busy, total) clock ticks since boot


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (uvicorn forks workers only with --workers > 1). Only
    the main threads' children are looked at: uvicorn forks from its main thread, and
    a server running hundreds of threads would make every sample slow."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{current}/task/{current}/children").read_text()
            todo.extend(int(child) for child in children.split())
    return pids


def status_figures(pid: int, *names: str) -> list[int]:
    """/proc/<pid>/status figures (`VmRSS`, `VmHWM` in KiB, `Threads`) summed over the
    process tree; 0 once it is gone."""
    totals = dict.fromkeys(names, 0)
    for each in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                name, _, value = line.partition(":")
                if name in totals:
                    totals[name] += int(value.split()[0])
    return [totals[name] for name in names]


def status_kib(pid: int, name: str) -> int:
    return status_figures(pid, name)[0]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process tree."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for each in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def main_thread_schedstat(pid: int) -> tuple[float, float]:
    """(CPU s, s runnable but waiting for a CPU) of the process's main thread, the one
    that runs a server's event loop (/proc/<pid>/task/<pid>/schedstat). Python 3.11 does
    not name its threads for the OS, so the others (hashing, aiosqlite) are only known
    together: the process's CPU minus this."""
    with contextlib.suppress(OSError, ValueError):
        cpu_ns, wait_ns = Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[:2]
        return int(cpu_ns) / 1e9, int(wait_ns) / 1e9
    return float("nan"), float("nan")


def own_cpu_seconds() -> float:
    """CPU time of this process (a load generator running in it, say)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_ticks() -> CpuTicks:
    found = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(value) for value in values[:8]]
            idle = ticks[3] + ticks[4]  # idle + iowait
            found[int(name[3:])] = (sum(ticks) - idle, sum(ticks))
    return found


def busy_share(before: CpuTicks, after: CpuTicks) -> float:
    """Busy fraction of all CPUs between two `cpu_ticks` snapshots."""
    busy = sum(after[cpu][0] - before[cpu][0] for cpu in after if cpu in before)
    total = sum(after[cpu][1] - before[cpu][1] for cpu in after if cpu in before)
    return busy / total if total else 0.0


def foreign_share(cpu: int | None, before: CpuTicks, after: CpuTicks, own: float) -> float:
    """Share of `cpu` that processes other than the one that used `own` CPU seconds on
    it took between two snapshots (another test run on a shared machine, ...)."""
    if cpu is None or cpu not in before or cpu not in after:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    busy = (after[cpu][0] - before[cpu][0]) / ticks
    total = (after[cpu][1] - before[cpu][1]) / ticks
    return max(0.0, busy - own) / total if total else 0.0


@dataclass(frozen=True)
class Snapshot:
    """The server's CPU time, its event loop thread's, and the machine's CPU ticks."""

    at: float
    cpu_s: float
    loop: tuple[float, float]  # (CPU s, s waiting for a CPU)
    ticks: CpuTicks

    @classmethod
    def take(cls, pid: int) -> Snapshot:
        return cls(
            time.monotonic(),
            cpu_seconds(pid),
            main_thread_schedstat(pid),
            cpu_ticks(),
        )


def wait_for_quiet(limit: float, window: float, deadline: float) -> tuple[float, float]:
    """Poll until the machine is less than `limit` busy over a `window`, at most
    `deadline` seconds; returns (seconds waited, the last busy share)."""
    start = time.monotonic()
    while True:
        before = cpu_ticks()
        time.sleep(window)  # the window measured, not a wait for something to happen
        share = busy_share(before, cpu_ticks())
        waited = time.monotonic() - start
        if share < limit or waited >= deadline:
            return waited, share


class RssSampler:
    """The process tree's VmRSS and thread count, sampled in a thread every few
    milliseconds, so that a peak of a fraction of a second is seen."""

    def __init__(self, pid: int, interval: float = 0.005) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int, int]] = []  # (monotonic s, KiB, threads)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            rss, threads = status_figures(self.pid, "VmRSS", "Threads")
            self.samples.append((now, rss, threads))
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def within(self, start: float, end: float) -> list[tuple[float, int, int]]:
        return [sample for sample in self.samples if start <= sample[0] <= end]

    def peak_kib(self, start: float, end: float) -> int:
        return max((kib for _, kib, _ in self.within(start, end)), default=0)

    def peak_threads(self, start: float, end: float) -> int:
        return max((threads for _, _, threads in self.within(start, end)), default=0)
