"""The servers measured: real `authapi serve` processes and the peer app, each pinned
to the server CPU with `taskset`, logging to a file, ready once /healthz answers, and
stopped (SIGTERM to its process group, SIGKILL after a deadline) whatever happens."""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from authbench.config import (
    PEER_DIR,
    PEER_VENV_BIN,
    REFRESH_SECRET,
    SIMPLEJWT_DIR,
    SIMPLEJWT_VENV_BIN,
    VENV_BIN,
    BenchConfig,
)

READY_DEADLINE = 30.0
STOP_DEADLINE = 15.0
_SETTINGS_SCRIPT = (
    "import json, sys; from authapi.config import Settings; settings = Settings(_env_file=None); "
    "print(json.dumps({name: getattr(settings, name) for name in sys.argv[1:]}, default=str))"
)
_running: list[Server] = []
# For instances on one database: they share its signing keys, so the key those are
# encrypted under (each would otherwise generate its own into its data directory), and
# one issuer (each would otherwise name the address it listens on, and refuse the
# others' tokens).
ONE_DATABASE = {
    "AUTHAPI_KEY_ENCRYPTION_KEY": base64.b64encode(b"bench-key-encryption-key-32-byte").decode(),
    "AUTHAPI_ISSUER": "http://authapi-bench.localhost",
}


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group a server was started in (`start_new_session`), then
    SIGKILL if it has not exited within STOP_DEADLINE."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_DEADLINE)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pinned(command: Sequence[str], cpu: int | None) -> list[str]:
    if cpu is None or shutil.which("taskset") is None:
        return list(command)
    return ["taskset", "-c", str(cpu), *command]


def set_priority(nice: int, pid: int = 0) -> bool:
    """Give a process, and its scheduler autogroup (sched(7): a new session gets one of
    its own, and the autogroup's nice value is what weighs against other sessions),
    the nice value `nice`; children inherit it. Below 0 needs root. False if refused."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
        autogroup = Path(f"/proc/{pid or 'self'}/autogroup")
        if autogroup.exists():
            autogroup.write_text(str(nice))
    except OSError:
        return False
    return True


class Server:
    def __init__(
        self,
        name: str,
        command: Sequence[str],
        env: dict[str, str],
        cwd: Path,
        port: int,
        nice: int = 0,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.env = env
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.log_path = cwd / "server.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command,
            env=env,
            cwd=cwd,  # a directory of its own: no .env of the caller is read
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _running.append(self)
        if nice:
            set_priority(nice, self.process.pid)
        self.wait_ready()

    @property
    def pid(self) -> int:
        return self.process.pid

    def shown(self) -> str:
        """The command line, for the report (the environment that matters in front)."""
        env = " ".join(
            f"{key}={value}"
            for key, value in sorted(self.env.items())
            if key.startswith(("AUTHAPI_", "PEER_")) and "SECRET" not in key
        )
        return f"{env} {shlex.join(self.command)}".strip()

    def log_tail(self, lines: int = 25) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def wait_ready(self) -> None:
        until = time.monotonic() + READY_DEADLINE
        with httpx.Client(base_url=self.base_url, timeout=2) as client:
            while time.monotonic() < until:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited ({self.process.returncode}):\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/healthz").status_code == 200:
                        return
                time.sleep(0.05)
        raise RuntimeError(f"{self.name}: no /healthz within {READY_DEADLINE} s\n{self.log_tail()}")

    def stop(self) -> None:
        if self in _running:
            _running.remove(self)
        stop_group(self.process)
        self._log.close()


def stop_all() -> None:
    for server in list(_running):
        server.stop()


atexit.register(stop_all)


@contextlib.contextmanager
def running(*servers: Server) -> Iterator[None]:
    try:
        yield
    finally:
        for server in servers:
            server.stop()


def base_environment() -> dict[str, str]:
    """The caller's environment without any AUTHAPI_* setting: the figures depend on
    what the suite sets, nothing else."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AUTHAPI_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def authapi_env(data_dir: Path, database_url: str | None, **extra: str) -> dict[str, str]:
    env = base_environment()
    env.update(
        {
            "AUTHAPI_DATA_DIR": str(data_dir),
            # The per-address limits would refuse a benchmark's load from one address.
            "AUTHAPI_RATE_LIMIT_ENABLED": "false",
            "AUTHAPI_REFRESH_TOKEN_SECRET": REFRESH_SECRET,
        }
    )
    if database_url:
        env["AUTHAPI_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def authapi_settings(config: BenchConfig, env: Mapping[str, str], *names: str) -> dict[str, Any]:
    """These settings as `authapi serve` with `env` reads them: in a process pinned as the
    servers are, since some defaults follow the CPUs a process may use (hash_workers)."""
    command = pinned([str(VENV_BIN / "python"), "-c", _SETTINGS_SCRIPT, *names], config.server_cpu)
    done = subprocess.run(
        command, env=dict(env), capture_output=True, text=True, check=True, timeout=60
    )
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def authapi(config: BenchConfig, name: str, database_url: str | None, **extra: str) -> Server:
    """`authapi serve` (defaults: one worker, uvloop, httptools) on a fresh data
    directory; on PostgreSQL after `authapi migrate`, which `serve` requires."""
    cwd = config.run_dir(name)
    data_dir = cwd / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    env = authapi_env(data_dir, database_url, **extra)
    command = str(VENV_BIN / "authapi")
    if database_url:
        subprocess.run(
            [command, "migrate"], env=env, cwd=cwd, check=True, capture_output=True, timeout=120
        )
    port = free_port()
    serve = pinned([command, "serve", "--port", str(port)], config.server_cpu)
    return Server(name, serve, env, cwd, port, config.nice)


def peer(config: BenchConfig, name: str, database_url: str, secret: str) -> Server:
    """The fastapi-users app under uvicorn with the same loop and parser as authapi."""
    cwd = config.run_dir(name)
    env = base_environment()
    env.update({"PEER_DATABASE_URL": database_url, "PEER_JWT_SECRET": secret})
    port = free_port()
    command = [
        str(PEER_VENV_BIN / "uvicorn"),
        "--app-dir",
        str(PEER_DIR),
        "app:app",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--port",
        str(port),
    ]
    return Server(name, pinned(command, config.server_cpu), env, cwd, port, config.nice)


# gunicorn's rule of thumb for sync workers is 2 x cores + 1: on the one core the server
# has, 3 processes, so that one runs while the others wait for PostgreSQL.
SIMPLEJWT_WORKERS = 3


def simplejwt(
    config: BenchConfig, name: str, database_url: str, secret: str, username: str, password: str
) -> Server:
    """The Django + simplejwt app as Django recommends serving it: `migrate`, then
    gunicorn with sync workers, one access log line per request (as authapi's). It has
    no sign-up, so its one user comes from `createsuperuser --noinput`."""
    cwd = config.run_dir(name)
    env = base_environment()
    env.update({"PEER_DATABASE_URL": database_url, "PEER_SECRET_KEY": secret})
    manage = [str(SIMPLEJWT_VENV_BIN / "python"), str(SIMPLEJWT_DIR / "manage.py")]
    subprocess.run(
        [*manage, "migrate", "--noinput"],
        env=env,
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=120,
    )
    subprocess.run(
        [
            *manage,
            "createsuperuser",
            "--noinput",
            "--username",
            username,
            "--email",
            f"{username}@example.com",
        ],
        env={**env, "DJANGO_SUPERUSER_PASSWORD": password},
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    command = [
        str(SIMPLEJWT_VENV_BIN / "gunicorn"),
        "--chdir",
        str(SIMPLEJWT_DIR),
        "--worker-class",
        "sync",
        "--workers",
        str(SIMPLEJWT_WORKERS),
        "--bind",
        f"127.0.0.1:{port}",
        "--access-logfile",
        "-",
        # No control socket: its default path is one per user, shared by every gunicorn.
        "--no-control-socket",
        "peer_site.wsgi:application",
    ]
    return Server(name, pinned(command, config.server_cpu), env, cwd, port, config.nice)
