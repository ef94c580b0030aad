"""`authapi` as real processes, the way an operator runs it: one command, one server
(`serving`), or several servers on one database (`instances`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

# Bounds, not delays: a healthy run finishes each step in a fraction of these.
COMMAND_TIMEOUT = 60.0
SERVER_START_TIMEOUT = 30.0


def authapi_env(database_url: str | None, data_dir: Path) -> dict[str, str]:
    """The caller's environment without its `AUTHAPI_*` settings, plus the test's."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AUTHAPI_")}
    env["AUTHAPI_DATA_DIR"] = str(data_dir)
    if database_url is not None:
        env["AUTHAPI_DATABASE_URL"] = database_url
    return env


def run_authapi(
    *args: str, env: dict[str, str], cwd: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    # cwd: a directory without a `.env`, so a developer's settings cannot leak in.
    return subprocess.run(  # noqa: S603 - our own command, fixed arguments
        [sys.executable, "-m", "authapi", *args],
        input=stdin if stdin is not None else "",
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_until_healthy(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        with httpx.Client(base_url=self.base_url, timeout=1.0) as http:
            while True:
                try:
                    if http.get("/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"authapi serve not healthy in time:\n{self.log()}")
                try:
                    # Waiting on the process is the pause between polls; it notices a crash.
                    self.process.wait(timeout=0.1)
                except subprocess.TimeoutExpired:
                    continue
                pytest.fail(f"authapi serve exited with {self.process.returncode}:\n{self.log()}")


@contextmanager
def serving(
    database_url: str,
    data_dir: Path,
    cwd: Path,
    *,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    workers: int = 1,
    wrapper: Sequence[str] = (),
    serve_args: Sequence[str] = (),
    entry: Sequence[str] = ("-m", "authapi"),
) -> Iterator[Server]:
    """`authapi serve` as a real process, healthy; stopped with SIGTERM on the way out.

    `port`: for settings that must name it before the start (`AUTHAPI_ISSUER`); a free
    one by default. `env`: more environment variables, e.g. `AUTHAPI_*` settings.
    `wrapper`: a command that runs it, e.g. one that drops privileges. `serve_args`:
    more options of `serve`. `entry`: how the interpreter runs authapi, e.g. `("-c",
    script)` for a script that calls `authapi.cli.main` itself."""
    if port is None:
        port = free_port()
    log_path = cwd / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(  # noqa: S603 - our own command, fixed arguments
            [
                *wrapper,
                *(sys.executable, *entry, "serve"),
                *("--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)),
                *serve_args,
            ],
            env={**authapi_env(database_url, data_dir), **(env or {})},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log_path)
    try:
        server.wait_until_healthy()
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=COMMAND_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=COMMAND_TIMEOUT)


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
    one issuer: without it, each would name its own address in its tokens. Like a
    scaled-out deployment, they share no state but the database (and Redis where
    configured)."""
    env = {"AUTHAPI_ISSUER": SHARED_ISSUER, **(env or {})}
    with ExitStack() as stack:
        servers = []
        for index in range(count):
            cwd = workdir / f"instance-{index}"
            cwd.mkdir()
            servers.append(stack.enter_context(serving(database_url, data_dir, cwd, env=env)))
        yield servers
