"""The data directory holds secrets: a private folder of private files, and no plaintext
signing key once the database holds it sealed."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives.asymmetric import ed25519

from authapi.app import create_app
from authapi.config import Settings
from authapi.signing.keys import load_key_file
from tests.support.database import clear_signing_keys
from tests.support.keys import write_pem
from tests.support.servers import authapi_env, run_authapi, serving
from tests.support.settings import make_settings


@pytest.fixture
def own_keys(database_url: str) -> Iterator[None]:
    """An empty key table before and after: a test with its own data directory has its
    own key-encryption key, which opens no other test's keys."""
    asyncio.run(clear_signing_keys(database_url))
    yield
    asyncio.run(clear_signing_keys(database_url))


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask a shell usually has (022), for this process and the ones it starts:
    an app started earlier in this process has set its own."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def modes(folder: Path) -> dict[str, int]:
    """The permission bits of the folder ("."), and of everything in it."""
    found = {".": stat.S_IMODE(folder.stat().st_mode)}
    for path in folder.rglob("*"):
        found[str(path.relative_to(folder))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def assert_private(folder: Path) -> None:
    found = modes(folder)
    assert found["."] == 0o700, found
    shared = {name: f"{mode:04o}" for name, mode in found.items() if mode & 0o077}
    assert not shared, f"readable by other users: {shared}"


@asynccontextmanager
async def started(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        yield http


async def published_kids(http: httpx.AsyncClient) -> list[str]:
    response = await http.get("/.well-known/jwks.json")
    assert response.status_code == 200
    return [key["kid"] for key in response.json()["keys"]]


@pytest.mark.usefixtures("own_keys", "usual_umask")
class TestAppStart:
    async def test_creates_a_private_folder_of_private_files(
        self, database_url: str, tmp_path: Path
    ) -> None:
        data_dir = tmp_path / "new" / "data"
        async with started(make_settings(database_url, data_dir)):
            pass
        assert {"refresh-token.key", "key-encryption.key"} <= set(modes(data_dir))
        assert_private(data_dir)

    async def test_tightens_a_folder_others_can_read(
        self, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        data_dir = tmp_path / "data"
        (data_dir / "mail").mkdir(parents=True)
        data_dir.chmod(0o755)
        (data_dir / "mail").chmod(0o755)
        for path in (data_dir / "authapi.db", data_dir / "mail" / "message.eml"):
            path.write_text("written by an older version")
            path.chmod(0o644)
        async with started(make_settings(database_url, data_dir)):
            pass
        assert_private(data_dir)
        assert f"data directory: {data_dir} was mode 0755" in caplog.text

    async def test_a_file_created_later_is_private_too(
        self, database_url: str, tmp_path: Path
    ) -> None:
        data_dir = tmp_path / "data"
        async with started(make_settings(database_url, data_dir)):
            # What the process writes there while it runs (mail files, say).
            (data_dir / "mail").mkdir()
            (data_dir / "mail" / "message.eml").write_text("to: someone")
        assert_private(data_dir)


@pytest.mark.usefixtures("own_keys")
class TestDevelopmentKey:
    async def test_no_plaintext_copy_and_a_restart_keeps_the_kid(
        self, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        settings = make_settings(database_url, tmp_path / "data")
        async with started(settings) as http:
            [kid] = await published_kids(http)
        assert not list(settings.data_dir.glob("*.pem"))
        # What the log tells an operator is how keys work now.
        assert "AUTHAPI_KEY_ENCRYPTION_KEY and AUTHAPI_REFRESH_TOKEN_SECRET" in caplog.text
        assert "authapi keys generate|import|rollover" in caplog.text
        assert "before production" not in caplog.text
        async with started(settings) as http:
            assert await published_kids(http) == [kid]

    async def test_an_older_versions_key_file_is_sealed_then_removed(
        self, database_url: str, tmp_path: Path
    ) -> None:
        settings = make_settings(database_url, tmp_path / "data")
        settings.data_dir.mkdir(mode=0o700)
        legacy = write_pem(
            settings.data_dir / "signing-key-eddsa.pem", ed25519.Ed25519PrivateKey.generate()
        )
        kid = load_key_file(legacy).kid
        async with started(settings) as http:
            assert await published_kids(http) == [kid]
        assert not legacy.exists()
        async with started(settings) as http:
            assert await published_kids(http) == [kid]

    async def test_a_key_file_the_table_does_not_hold_is_kept(
        self, database_url: str, tmp_path: Path
    ) -> None:
        settings = make_settings(database_url, tmp_path / "data")
        async with started(settings):
            pass
        other = write_pem(
            settings.data_dir / "signing-key-eddsa.pem", ed25519.Ed25519PrivateKey.generate()
        )
        async with started(settings) as http:
            assert load_key_file(other).kid not in await published_kids(http)
        assert other.exists()


@pytest.mark.usefixtures("usual_umask")
class TestCommands:
    def test_migrate_creates_the_embedded_database_private(self, tmp_path: Path) -> None:
        data_dir = tmp_path / "data"
        result = run_authapi("migrate", env=authapi_env(None, data_dir), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "authapi.db" in modes(data_dir)
        assert_private(data_dir)

    def test_migrate_tightens_an_older_database(self, tmp_path: Path) -> None:
        data_dir = tmp_path / "data"
        data_dir.mkdir(mode=0o755)
        (data_dir / "authapi.db").touch(mode=0o644)
        result = run_authapi("migrate", env=authapi_env(None, data_dir), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert_private(data_dir)

    @pytest.mark.usefixtures("own_keys")
    def test_serve_with_workers_restart_and_keys_commands(
        self, backend: str, database_url: str, tmp_path: Path
    ) -> None:
        data_dir = tmp_path / "data"
        # The embedded default on SQLite: its database, -wal and -shm live in the folder.
        url = None if backend == "sqlite" else database_url
        env = authapi_env(url, data_dir)
        kids = []
        for workers in (2, 1):  # several workers starting at once, then a restart
            with (
                serving(url, data_dir, tmp_path, workers=workers) as server,  # type: ignore[arg-type]
                httpx.Client(base_url=server.base_url, timeout=10.0) as http,
            ):
                assert http.get("/readyz").status_code == 200
                [kid] = [key["kid"] for key in http.get("/.well-known/jwks.json").json()["keys"]]
                kids.append(kid)
                if backend == "sqlite":
                    assert {"authapi.db-wal", "authapi.db-shm"} <= set(modes(data_dir))
                assert_private(data_dir)
        assert kids[0] == kids[1]
        assert not list(data_dir.glob("*.pem"))
        listed = run_authapi("keys", "list", env=env, cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        assert kids[0] in listed.stdout
        generated = run_authapi("keys", "generate", env=env, cwd=tmp_path)
        assert generated.returncode == 0, generated.stderr
        assert_private(data_dir)


@pytest.mark.usefixtures("own_keys", "usual_umask")
async def test_a_linked_data_dir_is_tightened_where_it_points(
    database_url: str, tmp_path: Path
) -> None:
    target = tmp_path / "real"
    target.mkdir(mode=0o755)
    target.chmod(0o755)
    link = tmp_path / "data"
    link.symlink_to(target)
    async with started(make_settings(database_url, link)):
        pass
    assert_private(target)
