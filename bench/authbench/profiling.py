"""`scripts/bench --profile`: py-spy samples the server while a scenario's measured
load runs (access: /healthz and /whoami; peer: authapi's /users/me; refresh: the
authapi run), and the samples are
summed up into the hottest functions and packages (bench/.work/profile/*.md).

py-spy (from PyPI, in bench/.work/tools-venv) attaches to the running server by pid,
so it needs root or ptrace rights. Samples only count while the server's thread is on
a Python or native frame (py-spy leaves idle waits out), so the shares are shares of
the server's busy time.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from authbench.config import TOOLS_VENV_BIN, WORK_DIR, BenchConfig

T = TypeVar("T")
PROFILE_DIR = WORK_DIR / "profile"
RATE = 100  # samples per second
# Where a frame's file lives (py-spy shows paths from site-packages) -> its package.
PACKAGES = (
    "authapi",
    "jwt",
    "cryptography",
    "fastapi",
    "starlette",
    "pydantic",
    "pydantic_core",
    "uvicorn",
    "sqlalchemy",
    "asyncpg",
    "logging",
    "asyncio",
    "json",
    "anyio",
    "limits",
    "email_validator",
)
MAIN_THREAD = "cmd_serve (authapi/cli.py"  # on every stack of the event loop's thread


@contextlib.contextmanager
def maybe(config: BenchConfig, pid: int, seconds: float, name: str) -> Iterator[None]:
    """Record `pid` for `seconds` while the block runs, if --profile asked for it."""
    if not config.profile:
        yield
        return
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    raw = PROFILE_DIR / f"{name}.txt"
    command = [
        str(TOOLS_VENV_BIN / "py-spy"),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, int(seconds))),
        "--rate",
        str(RATE),
        "--threads",  # stacks start with the thread: the event loop's is told apart
        "--format",
        "raw",
        "--output",
        str(raw),
    ]
    recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        _, errors = recorder.communicate(timeout=seconds + 60)
        if recorder.returncode != 0:
            raise RuntimeError(f"py-spy failed: {errors.decode(errors='replace')[-2000:]}")
        (PROFILE_DIR / f"{name}.md").write_text(summarise(raw, name))


def profiled(
    config: BenchConfig, pid: int, name: str, load: Callable[[int], T]
) -> Callable[[int], T]:
    """`load` (of a number of seconds), with py-spy recording `pid` meanwhile."""

    def run_for(seconds: int) -> T:
        with maybe(config, pid, seconds, name):
            return load(seconds)

    return run_for


def _package(frame: str) -> str:
    path = frame.partition(" (")[2]
    for package in PACKAGES:
        if path.startswith(package + "/") or f"/{package}/" in path:
            return package
    return "other"


def _short(frame: str) -> str:
    """`function (path/to/file.py:12)` -> `function (file.py)`: lines merged."""
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rsplit("/", 2)
    return f"{name} ({'/'.join(file[-2:])})"


def summarise(raw: Path, name: str, top: int = 25) -> str:
    """Inclusive and self shares per function, and inclusive share per package, of
    the event loop's thread (the others, aiosqlite's and the hashing pool's, mostly
    wait), from py-spy's raw (collapsed stacks) output."""
    stacks: list[tuple[str, list[str], int]] = []  # (thread, frames root first, count)
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        thread = frames.pop(0) if frames[0].startswith("thread (") else "main"
        stacks.append((thread, frames, int(count_text)))
    # SQLAlchemy runs the ORM in greenlets: their stacks lack the thread's root frames,
    # so the event loop's thread is found by id, then all its stacks count.
    loop_threads = {thread for thread, frames, _ in stacks if MAIN_THREAD in ";".join(frames)}
    total = other_threads = in_greenlets = 0
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    for thread, frames, count in stacks:
        if thread not in loop_threads or not frames:
            other_threads += count
            continue
        total += count
        if MAIN_THREAD not in ";".join(frames):
            in_greenlets += count
        for frame in {_short(frame) for frame in frames}:
            inclusive[frame] += count
        for package in {_package(frame) for frame in frames}:
            packages[package] += count
        own[_short(frames[-1])] += count
    if not total:
        return f"# {name}: no samples\n"

    def table(counter: Counter[str], title: str, rows_wanted: int = top) -> list[str]:
        rows = [f"| {title} | share |", "|---|---:|"]
        rows += [
            f"| `{key}` | {100 * n / total:.1f} % |" for key, n in counter.most_common(rows_wanted)
        ]
        return rows

    lines = [
        f"# Profile: {name}",
        "",
        f"{total} samples of the event loop's thread at {RATE}/s (py-spy, Python frames, "
        f"idle waits left out; {other_threads} samples of other threads not counted). "
        f"{100 * in_greenlets / total:.1f} % of them ran in SQLAlchemy's greenlets, whose "
        "stacks start at the greenlet (the request's frames above it are not shown).",
        "",
    ]
    lines += table(packages, "package (inclusive)") + [""]
    lines += table(inclusive, "function (inclusive)", 60) + [""]
    lines += table(own, "function (self)")
    return "\n".join(lines) + "\n"
