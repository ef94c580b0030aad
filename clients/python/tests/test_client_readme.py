"""The README's usage examples run as written, against the stand-in for authapi."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import httpx
import pytest
from fake_authapi import EMAIL, PASSWORD, FakeAuthapi

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example(marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    [block] = [b for b in blocks if f"# example: {marker}" in b]
    return str(block)


@pytest.mark.parametrize(("marker", "client"), [("async", "AsyncClient"), ("sync", "Client")])
def test_usage_example(
    marker: str, client: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server = FakeAuthapi()
    # The example builds its own client; this one talks to the stand-in instead of the
    # network.
    monkeypatch.setattr(
        httpx, client, functools.partial(getattr(httpx, client), transport=server.transport)
    )
    monkeypatch.setenv("AUTHAPI_PASSWORD", PASSWORD)
    exec(readme_example(marker), {"__name__": "__main__"})  # noqa: S102 - our own README
    assert capsys.readouterr().out == f"{EMAIL}\n"
    assert server.grants == ["password"]
