"""fd_table.py: a serving process's table of open files is sized at start-up, so that a
burst of connections never waits for the kernel to grow it (the stall is described in
docs/performance.md; speed is measured by scripts/bench, not here).

Each test runs in a fresh interpreter, whose table is still small, with a soft limit of
LIMIT descriptors: the table's size is the FDSize line of /proc/self/status."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the stall is Linux's")

LIMIT = 4096  # a power of two: the kernel sizes tables in powers of two


def in_fresh_process(code: str, *, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `code` (which sets `result`) with RLIMIT_NOFILE's soft limit at LIMIT; the
    table's size before and after it, and `result`."""
    program = textwrap.dedent(
        """
        import json, os, resource
        def fd_size():
            for line in open("/proc/self/status"):
                if line.startswith("FDSize:"):
                    return int(line.split()[1])
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (SOFT_LIMIT, hard))
        before = fd_size()
        result = None
        """
    ).replace("SOFT_LIMIT", str(LIMIT))
    program += textwrap.dedent(code)
    program += "\nprint(json.dumps({'before': before, 'after': fd_size(), 'result': result}))\n"
    done = subprocess.run(  # noqa: S603 - this interpreter, a program of our own
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=env,
    )
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


@pytest.fixture(autouse=True)
def limit_allows_it() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < LIMIT:
        pytest.skip(f"this machine's hard limit of open files is {hard}")


def test_the_table_is_sized_for_the_soft_limit_and_new_descriptors_stay_low() -> None:
    seen = in_fresh_process(
        """
        from authapi.fd_table import presize
        size = presize()
        opened = os.open(os.devnull, os.O_RDONLY)
        result = {"size": size, "opened": opened}
        """
    )
    assert seen["before"] < LIMIT  # a new process's table: 64 or 256 entries
    assert seen["after"] == LIMIT
    assert seen["result"]["size"] == LIMIT
    assert seen["result"]["opened"] < 64  # the lowest free number, as always


def test_a_descriptor_already_open_at_the_top_is_left_open() -> None:
    seen = in_fresh_process(
        f"""
        from authapi.fd_table import presize
        top = os.dup2(1, {LIMIT - 1})  # an inherited descriptor, say
        presize()
        os.write(top, b"")  # still open: dup2 onto it would have closed it
        result = os.fstat(top).st_ino == os.fstat(1).st_ino
        """
    )
    assert seen["result"] is True


def test_the_serve_factory_sizes_its_workers_table(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AUTHAPI_")}
    env["AUTHAPI_DATA_DIR"] = str(tmp_path / "data")
    seen = in_fresh_process(
        f"""
        os.chdir({str(tmp_path)!r})  # no .env
        from authapi.app import create_app_from_environment
        create_app_from_environment()
        """,
        env=env,
    )
    assert seen["after"] == LIMIT


def test_an_app_made_in_process_leaves_the_table_alone(tmp_path: Path) -> None:
    # Tests and embedders build apps with create_app: their process keeps its own.
    seen = in_fresh_process(
        f"""
        from pathlib import Path
        from authapi.app import create_app
        from authapi.config import Settings
        create_app(Settings(_env_file=None, data_dir=Path({str(tmp_path)!r})))
        """
    )
    assert seen["after"] == seen["before"]
