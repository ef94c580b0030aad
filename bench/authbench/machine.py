"""Facts about the machine and the code measured, for the head of RESULTS.md."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

import asyncpg

from authbench import postgres
from authbench.config import PEER_VENV_BIN, ROOT, SIMPLEJWT_VENV_BIN

PACKAGES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "pydantic",
    "sqlalchemy",
    "asyncpg",
    "aiosqlite",
    "pyjwt",
    "cryptography",
    "argon2-cffi",
)
PEER_PACKAGES = ("fastapi-users", "fastapi-users-db-sqlalchemy", "sqlalchemy", "pyjwt", "pwdlib")
SIMPLEJWT_PACKAGES = (
    "django",
    "djangorestframework",
    "djangorestframework-simplejwt",
    "pyjwt",
    "gunicorn",
    "psycopg",
)


def _output(*command: str) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)
        return (done.stdout or done.stderr).rstrip()
    return ""


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def cpu_ticks() -> tuple[int, int]:
    """(stolen, all) CPU ticks since boot, /proc/stat's first line: "steal" is the time
    the hypervisor ran something else while this machine's CPUs had work."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        first = Path("/proc/stat").read_text().split("\n", 1)[0]
        # cpu user nice system idle iowait irq softirq steal (guest time is inside user)
        fields = [int(value) for value in first.split()[1:]]
        return fields[7], sum(fields[:8])
    return 0, 0


def stolen_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    ticks = after[1] - before[1]
    return (after[0] - before[0]) / ticks if ticks > 0 else float("nan")


def versions(names: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def venv_versions(venv_bin: Path, names: tuple[str, ...]) -> dict[str, str]:
    """The versions of these packages in a peer's venv (empty if it is not installed)."""
    if not (venv_bin / "python").exists():
        return {}
    listing = _output(str(venv_bin / "python"), "-m", "pip", "list", "--format=freeze")

    def normal(name: str) -> str:  # pip lists some names with "_" (PEP 503: the same)
        return name.lower().replace("_", "-")

    wanted = {normal(name) for name in names}
    pairs = (line.split("==", 1) for line in listing.splitlines() if "==" in line)
    return {name: version for name, version in pairs if normal(name) in wanted}


def source() -> dict[str, str]:
    commit = _output("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD")
    changed = _output(
        "git", "-C", str(ROOT), "status", "--porcelain", "--", "src", "migrations", "pyproject.toml"
    )
    return {"commit": commit, "uncommitted": ", ".join(line[3:] for line in changed.splitlines())}


def _postgres_facts() -> dict[str, str]:
    try:
        return postgres.server_facts()
    except (OSError, asyncpg.PostgresError) as exc:  # the scenarios will say it too
        unknown = f"unavailable ({type(exc).__name__})"
        names = ("version", "shared_buffers", "synchronous_commit", "max_connections")
        return dict.fromkeys(names, unknown)


def facts() -> dict[str, object]:
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().splitlines()[0].split()[1])
        memory = f"{kib / 2**20:.1f} GiB"
    return {
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "memory": memory,
        "kernel": platform.release(),
        "os": _output("sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"),
        "python": platform.python_version(),
        "packages": versions(PACKAGES),
        "peer_packages": venv_versions(PEER_VENV_BIN, PEER_PACKAGES),
        "simplejwt_packages": venv_versions(SIMPLEJWT_VENV_BIN, SIMPLEJWT_PACKAGES),
        "wrk": " ".join(_output("wrk", "--version").split()[:2]),
        "postgres": _postgres_facts(),
        "source": source(),
    }
