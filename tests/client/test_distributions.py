"""The client is a distribution of its own that a client app installs alone: its wheel
requires httpx and nothing of the server, imports without the server's packages, and
the server's wheel no longer carries a client. Wheels are built offline, without build
isolation, by the hatchling the test extra installs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "python"
# What a client app must not get with the client: the server and its heavy dependencies.
SERVER_PACKAGES = ("authapi", "fastapi", "sqlalchemy", "asyncpg", "argon2", "alembic")


def build_wheel(project: Path, out: Path) -> Path:
    subprocess.run(  # noqa: S603 - pip, from the interpreter running the tests
        [
            *(sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check"),
            *("--no-deps", "--no-build-isolation", "--no-index", "--wheel-dir", str(out)),
            str(project),
        ],
        check=True,
    )
    [wheel] = out.glob("*.whl")
    return wheel


def metadata(wheel: Path) -> list[tuple[str, str]]:
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return Parser().parsestr(archive.read(name).decode()).items()


@pytest.fixture(scope="module")
def client_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(CLIENT, tmp_path_factory.mktemp("client-wheel"))


def test_the_client_requires_only_httpx(client_wheel: Path) -> None:
    fields = metadata(client_wheel)
    assert ("Name", "authapi-client") in fields
    assert [value for key, value in fields if key == "Requires-Dist"] == ["httpx>=0.27"]
    assert ("Requires-Python", ">=3.11") in fields


def test_the_client_wheel_is_typed_and_holds_only_the_client(client_wheel: Path) -> None:
    with zipfile.ZipFile(client_wheel) as archive:
        packages = {name.split("/")[0] for name in archive.namelist()}
        assert "authapi_client/py.typed" in archive.namelist()
    assert {p for p in packages if not p.endswith(".dist-info")} == {"authapi_client"}


def test_the_client_works_without_the_server_installed(client_wheel: Path, tmp_path: Path) -> None:
    # Installed from the wheel into a directory of its own; the server's packages, though
    # present in this environment, refuse to import: the client must not need them.
    target = tmp_path / "site"
    with zipfile.ZipFile(client_wheel) as archive:
        archive.extractall(target)  # a wheel is a zip laid out as installed (PEP 427)
    program = textwrap.dedent(
        f"""
        import importlib.abc, sys

        class NoServer(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in {SERVER_PACKAGES!r}:
                    raise ImportError(f"the client imported {{name}}")
                return None

        sys.meta_path.insert(0, NoServer())
        sys.path.insert(0, {str(target)!r})

        import httpx
        import authapi_client
        assert authapi_client.__file__.startswith({str(target)!r}), authapi_client.__file__

        def token_endpoint(request):
            body = {{"access_token": "at", "refresh_token": "rt", "expires_in": 300}}
            if request.url.path == "/token":
                return httpx.Response(200, json=body)
            return httpx.Response(200, json={{"authorization": request.headers["Authorization"]}})

        auth = authapi_client.AuthapiAuth(
            "http://auth/token", username="svc@example.com", password="secret"
        )
        with httpx.Client(transport=httpx.MockTransport(token_endpoint), auth=auth) as http:
            print(http.get("http://api/me").json()["authorization"])
        """
    )
    result = subprocess.run(  # noqa: S603 - our own program, with this interpreter
        [sys.executable, "-c", program], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Bearer at\n"


def test_the_server_wheel_has_no_client(tmp_path: Path) -> None:
    wheel = build_wheel(ROOT, tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "authapi/app.py" in names  # the server's wheel, as it should be
    client = ("authapi/client.py", "authapi/client/", "authapi_client/")
    assert [n for n in names if n.startswith(client)] == []
