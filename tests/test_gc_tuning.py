"""gc_tuning.py: a serving process collects young garbage less often (the refresh's
p99 and the full collections behind it are in docs/performance.md; speed is measured
by scripts/bench, not here)."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from authapi.app import create_app, create_app_from_environment
from authapi.config import Settings
from authapi.gc_tuning import YOUNG_THRESHOLD, tune_for_serving


@pytest.fixture(autouse=True)
def thresholds() -> Iterator[None]:
    """The test process's own thresholds, put back afterwards."""
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # CPython's defaults
    yield
    gc.set_threshold(*before)


def test_only_the_young_threshold_is_raised() -> None:
    gc.set_threshold(700, 11, 12)

    tune_for_serving()

    assert gc.get_threshold() == (YOUNG_THRESHOLD, 11, 12)


def test_the_serve_factory_tunes_its_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    for name in [name for name in os.environ if name.startswith("AUTHAPI_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AUTHAPI_DATA_DIR", str(tmp_path / "data"))

    create_app_from_environment()

    assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)


def test_an_app_made_in_process_leaves_the_collector_alone(tmp_path: Path) -> None:
    # Tests and embedders build apps with create_app: their process keeps its own.
    create_app(Settings(_env_file=None, data_dir=tmp_path))

    assert gc.get_threshold() == (700, 10, 10)
