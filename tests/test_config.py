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


@pytest.mark.parametrize(
    ("value", "kept"),
    [("https://app.example/", "https://app.example"), ("http://localhost:8000/demo", None)],
)
def test_app_url_is_kept_without_its_last_slash(value: str, kept: str | None) -> None:
    from authapi.config import Settings

    assert Settings(_env_file=None, app_url=value).app_url == (kept or value)


@pytest.mark.parametrize(
    "value",
    [
        "ftp://app.example",
        "https://",
        "app.example",
        "https://a.example/?x=1",
        "https://a.example/#f",
    ],
)
def test_app_url_must_be_a_plain_http_url(value: str) -> None:
    from pydantic import ValidationError

    from authapi.config import Settings

    with pytest.raises(ValidationError, match="AUTHAPI_APP_URL"):
        Settings(_env_file=None, app_url=value)
