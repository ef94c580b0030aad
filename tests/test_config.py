"""Defaults that depend on the machine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="Linux CPU affinity")
def test_hash_workers_default_to_the_cpus_the_process_may_use() -> None:
    taskset = shutil.which("taskset")
    assert taskset is not None, "util-linux's taskset is part of this machine"
    env = {key: value for key, value in os.environ.items() if not key.startswith("AUTHAPI_")}
    workers = subprocess.run(  # noqa: S603 - fixed command
        [
            *(taskset, "-c", "0", sys.executable, "-c"),
            "from authapi.config import Settings; print(Settings(_env_file=None).hash_workers)",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert workers.stdout.strip() == "1"
