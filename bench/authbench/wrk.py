"""wrk (Debian's package), on the load generator's CPU, and its report parsed."""

from __future__ import annotations

import re
import shlex
import statistics
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from authbench.servers import pinned

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class WrkResult:
    requests_per_s: float
    requests: int
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: str
    command: str


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse(output: str, command: str) -> WrkResult:
    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output)
        if match is None:
            raise RuntimeError(f"wrk output lacks /{pattern}/:\n{output}")
        return match

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    return WrkResult(
        requests_per_s=float(find(r"Requests/sec:\s+([\d.]+)").group(1)),
        requests=int(find(r"(\d+) requests in").group(1)),
        p50_ms=_ms(find(r"\n\s+50%\s+(\S+)").group(1)),
        p99_ms=_ms(find(r"\n\s+99%\s+(\S+)").group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=errors.group(1).strip() if errors else "",
        command=command,
    )


def run(
    url: str,
    *,
    cpu: int | None,
    seconds: int,
    connections: int = 32,
    headers: Sequence[str] = (),
    script: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> WrkResult:
    """`wrk -t1 -cN -dS --latency`; fails on any non-2xx answer or socket error."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    for header in headers:
        command += ["-H", header]
    if script is not None:
        command += ["-s", str(script)]
    command.append(url)
    shown = shlex.join(["taskset", "-c", str(cpu)] if cpu is not None else [])
    shown = (shown + " " + shlex.join(command)).strip()
    for header in headers:  # no token in the report
        if header.lower().startswith("authorization:"):
            shown = shown.replace(shlex.quote(header), "'Authorization: Bearer $TOKEN'")
    done = subprocess.run(
        pinned(command, cpu),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        env=None if env is None else dict(env),
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr}{done.stdout}")
    result = parse(done.stdout, shown)
    if result.non_2xx or result.socket_errors:
        raise RuntimeError(f"wrk saw failures ({url}):\n{done.stdout}")
    return result


def load(
    url: str, *, cpu: int | None, headers: Sequence[str] = (), connections: int = 32
) -> Callable[[int], WrkResult]:
    """`run` of this URL for a number of seconds still to choose."""

    def run_for(seconds: int) -> WrkResult:
        return run(url, cpu=cpu, seconds=seconds, headers=headers, connections=connections)

    return run_for


def combine(slices: Sequence[WrkResult]) -> WrkResult:
    """One figure of several slices: requests over their total time; the medians of
    their percentiles."""
    requests = sum(part.requests for part in slices)
    seconds = sum(part.requests / part.requests_per_s for part in slices)
    return WrkResult(
        requests_per_s=requests / seconds,
        requests=requests,
        p50_ms=statistics.median(part.p50_ms for part in slices),
        p99_ms=statistics.median(part.p99_ms for part in slices),
        non_2xx=0,
        socket_errors="",
        command=slices[0].command,
    )


def alternating(
    loads: Sequence[Callable[[int], WrkResult]], seconds: int, segment: int
) -> list[WrkResult]:
    """Each load for `seconds` in all, in slices of `segment` seconds taken in turn
    (A B A B ...), so that a change in what else the machine does hits all alike."""
    slices: list[list[WrkResult]] = [[] for _ in loads]
    for _ in range(max(1, seconds // segment)):
        for number, load in enumerate(loads):
            slices[number].append(load(segment))
    return [combine(parts) for parts in slices]
