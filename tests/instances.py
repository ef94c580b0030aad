"""Several `authapi serve` processes on one database, the way a scaled-out deployment
runs them (no shared state but the database, and Redis where configured)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.test_cli import Server, serving

SHARED_ISSUER = "http://localhost:8000"


@contextmanager
def instances(
    database_url: str,
    data_dir: Path,
    workdir: Path,
    *,
    count: int = 2,
    env: Mapping[str, str] | None = None,
) -> Iterator[list[Server]]:
    """`count` instances sharing the database and the data directory (so the keys and
    the refresh-token secret, as a deployment shares them through its settings) and
    one issuer: without it, each would name its own address in its tokens."""
    env = {"AUTHAPI_ISSUER": SHARED_ISSUER, **(env or {})}
    with ExitStack() as stack:
        servers = []
        for index in range(count):
            cwd = workdir / f"instance-{index}"
            cwd.mkdir()
            servers.append(stack.enter_context(serving(database_url, data_dir, cwd, env=env)))
        yield servers
