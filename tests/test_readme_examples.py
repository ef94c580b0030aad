"""The README's examples run as written: a service verifying our access tokens with
PyJWT's PyJWKClient and nothing else."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.factories import PASSWORD
from tests.test_cli import free_port, serving

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example(marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    [block] = [b for b in blocks if f"# example: {marker}" in b]
    return str(block)


def test_verify_with_jwks_against_a_real_server(
    database_url: str, data_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with serving(database_url, data_dir, tmp_path, port=port, env={"AUTHAPI_ISSUER": url}):
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
