"""The README's usage examples run as written, against the stand-in for authapi."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import httpx
import pytest
from fake_authapi import CODE, EMAIL, MFA_GRANT, PASSWORD, FakeAuthapi

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


def test_otp_example(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    server = FakeAuthapi(mfa_methods=["totp", "recovery_code"])
    client = functools.partial(httpx.Client, transport=server.transport)
    monkeypatch.setattr(httpx, "Client", client)
    monkeypatch.setenv("AUTHAPI_PASSWORD", PASSWORD)
    monkeypatch.setattr("builtins.input", lambda prompt: CODE)  # the user types it
    example = readme_example("otp").replace("alice@example.com", EMAIL)
    exec(example, {"__name__": "__main__"})  # noqa: S102 - our own README
    assert capsys.readouterr().out == f"{EMAIL}\n"
    assert server.grants == ["password", MFA_GRANT]
