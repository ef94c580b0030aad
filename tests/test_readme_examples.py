"""The README's examples run as written: the curl walk-through, and a service verifying
our access tokens with PyJWT's PyJWKClient and nothing else."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from authapi.sessions.models import LoginSession
from authapi.users.models import User
from tests.factories import PASSWORD
from tests.test_cli import free_port, serving

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example(marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    [block] = [b for b in blocks if f"# example: {marker}" in b]
    return str(block)


def readme_section_shell(title: str) -> str:
    """The one ```sh block of the README section `title`."""
    section = README.read_text().split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    return str(block)


async def session_end_reasons(database_url: str, email: str) -> list[str | None]:
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            rows = await connection.scalars(
                select(LoginSession.revoked_reason)
                .join(User, User.id == LoginSession.user_id)
                .where(User.email == email)
            )
            return list(rows)
    finally:
        await engine.dispose()


def test_curl_walk_through_against_a_real_server(
    database_url: str, data_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    email = f"walk-{tmp_path.name}@example.com"
    script = (
        readme_section_shell("Walk-through with curl")
        .replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        .replace("alice@example.com", email)
    )
    # No grace window: a step presenting a spent refresh token would revoke the session
    # at once, and the walk-through's logout would not be what ended it.
    env = {"AUTHAPI_REFRESH_REUSE_GRACE": "0"}
    with serving(database_url, data_dir, tmp_path, port=port, env=env):
        run = subprocess.run(  # noqa: S603 - our README's commands, against our server
            ["bash", "-euo", "pipefail", "-c", script],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert run.returncode == 0, run.stderr
    assert f'"email":"{email}"' in run.stdout  # the profile
    assert '"sub":' in run.stdout  # the verified claims
    assert asyncio.run(session_end_reasons(database_url, email)) == ["logout"]


def test_verify_with_jwks_against_a_real_server(
    database_url: str, data_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # No AUTHAPI_ISSUER: the issuer is the address served, which the example verifies.
    with serving(database_url, data_dir, tmp_path, port=port):
        with httpx.Client(base_url=url) as http:
            email = f"jwks-{tmp_path.name}@example.com"
            user = http.post("/users", json={"email": email, "password": PASSWORD}).json()
            form = {"grant_type": "password", "username": email, "password": PASSWORD}
            tokens = http.post("/token", data=form).json()

        namespace: dict[str, Any] = {"AUTHAPI_URL": url, "access_token": tokens["access_token"]}
        exec(readme_example("verify-with-jwks"), namespace)  # noqa: S102 - our README's code
        assert namespace["claims"]["sub"] == user["id"]

        verify = namespace["verify"]
        with pytest.raises(jwt.InvalidTokenError):
            verify(tokens["refresh_token"])  # not a JWT at all
        header, payload, signature = tokens["access_token"].split(".")
        with pytest.raises(jwt.InvalidTokenError):
            verify(f"{header}.{payload}.{signature[::-1]}")
