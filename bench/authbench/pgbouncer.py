"""A real PgBouncer (Debian's package) in transaction mode in front of the local
PostgreSQL, on a free port: for the `pooler` scenario and tests/test_pooler.py.

Every client may log in (`auth_type = any`), as whatever user it names; PgBouncer
itself logs in to PostgreSQL as the upstream URL's user (trust, as the suite's server
allows). PgBouncer refuses to run as root, so under root it runs as the `postgres`
user (`runuser`), with its config and log in a folder that user owns.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from authbench.servers import free_port, stop_group

PGBOUNCER = Path("/usr/sbin/pgbouncer")
READY_DEADLINE = 10.0
MAX_CLIENTS = 500  # several servers' pools (AUTHAPI_DB_POOL_SIZE each) and the tests'


class PgBouncerMissing(RuntimeError):
    def __init__(self) -> None:
        super().__init__(
            f"PgBouncer is missing: no {PGBOUNCER} (apt-get install pgbouncer; "
            "scripts/test installs it)"
        )


def installed() -> bool:
    return PGBOUNCER.exists()


def config(port: int, upstream: str, pool_size: int) -> str:
    """pgbouncer.ini: any database name goes to the same name on `upstream`'s server
    (a URL such as postgresql://postgres@127.0.0.1:5432), at most `pool_size` server
    connections per database and user."""
    server = urlsplit(upstream)
    host, server_port = server.hostname or "127.0.0.1", server.port or 5432
    return f"""\
[databases]
* = host={host} port={server_port} user={server.username or "postgres"}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = {MAX_CLIENTS}
server_reset_query =
; asyncpg sends these; PgBouncer would refuse a client whose startup has them.
ignore_startup_parameters = extra_float_digits,options
"""


@dataclass
class PgBouncer:
    port: int
    folder: Path
    process: subprocess.Popen[bytes]

    @property
    def log_path(self) -> Path:
        return self.folder / "pgbouncer.log"

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""

    def through(self, url: str) -> str:
        """`url` (a PostgreSQL URL of the upstream server) with PgBouncer's port."""
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit(":", 1)[0] if parts.port else parts.netloc
        return parts._replace(netloc=f"{netloc}:{self.port}").geturl()

    def stop(self) -> None:
        stop_group(self.process)


def _accepting(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _start(upstream: str, pool_size: int) -> PgBouncer:
    if not installed():
        raise PgBouncerMissing
    folder = Path(tempfile.mkdtemp(prefix="authapi-pgbouncer-"))
    port = free_port()
    ini = folder / "pgbouncer.ini"
    ini.write_text(config(port, upstream, pool_size))
    command = [str(PGBOUNCER), str(ini)]
    if os.geteuid() == 0:
        postgres = pwd.getpwnam("postgres")
        for path in (folder, ini):
            shutil.chown(path, postgres.pw_uid, postgres.pw_gid)
        command = ["runuser", "-u", "postgres", "--", *command]
    with (folder / "pgbouncer.log").open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - a fixed command line of our own
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    bouncer = PgBouncer(port, folder, process)
    until = time.monotonic() + READY_DEADLINE
    while not _accepting(port):
        if process.poll() is not None or time.monotonic() > until:
            bouncer.stop()
            raise RuntimeError(f"PgBouncer did not start:\n{bouncer.log()[-2000:]}")
        time.sleep(0.02)  # a readiness poll, bounded above
    return bouncer


@contextlib.contextmanager
def running(upstream: str, pool_size: int) -> Iterator[PgBouncer]:
    """PgBouncer in front of `upstream` while the block runs; stopped, and its folder
    removed, whatever happens."""
    bouncer = _start(upstream, pool_size)
    try:
        yield bouncer
    finally:
        bouncer.stop()
        shutil.rmtree(bouncer.folder, ignore_errors=True)
