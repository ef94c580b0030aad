from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.engine import make_url

from authapi import migrate
from authapi.app import create_app
from authapi.context import AppContext
from authapi.signing import published
from tests.support.database import POSTGRES_SERVER_URL, POSTGRES_URL
from tests.support.factories import PASSWORD, bearer, register, registered_login
from tests.support.servers import serving
from tests.support.settings import make_settings

# Runs a command as root without any capability: file modes then bind it as they bind
# any user (the tests run as root, whom they do not bind). Dropping to another user
# instead would lock it out of the interpreter, which lives under /root.
WITHOUT_PRIVILEGES = ("setpriv", "--bounding-set=-all", "--inh-caps=-all")


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200


async def test_readiness_probes_leave_nothing_behind(
    client: httpx.AsyncClient, context: AppContext
) -> None:
    for _ in range(3):
        assert (await client.get("/readyz")).status_code == 200
    async with context.engine.connect() as connection:
        versions = await connection.execute(text("SELECT version_num FROM alembic_version"))
        assert versions.scalars().all() == [migrate.head_revision()]


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "temporarily_unavailable"
    assert response.headers["retry-after"]


def make_writable(data_dir: Path, writable: bool) -> None:
    """The data directory and its files, writable by their owner or by nobody."""
    for path in [data_dir, *data_dir.iterdir()]:
        mode = path.stat().st_mode
        path.chmod(mode | 0o200 if writable else mode & ~0o222)


class TestReadOnlySQLite:
    """An instance restarted on a data directory it cannot write, where the last one
    left its `-wal` and `-shm` files: it reads, so it looked ready, but takes no login."""

    @pytest.fixture
    def read_only_data_dir(self, tmp_path: Path) -> Iterator[tuple[str, Path]]:
        data_dir = tmp_path / "data"
        data_dir.mkdir(mode=0o700)
        database_url = f"sqlite+aiosqlite:///{data_dir / 'authapi.db'}"
        with serving(database_url, data_dir, tmp_path) as server:
            httpx.post(
                f"{server.base_url}/users",
                json={"email": "reader@example.com", "password": PASSWORD},
                timeout=10.0,
            ).raise_for_status()
            server.process.kill()  # no clean shutdown: the -wal and -shm files stay
            server.process.wait()
        assert (data_dir / "authapi.db-wal").exists()
        assert (data_dir / "authapi.db-shm").exists()
        make_writable(data_dir, False)
        try:
            yield database_url, data_dir
        finally:
            make_writable(data_dir, True)

    def test_readyz_is_503_and_the_log_names_the_cause(
        self, read_only_data_dir: tuple[str, Path], tmp_path: Path
    ) -> None:
        database_url, data_dir = read_only_data_dir
        cwd = tmp_path / "read-only"
        cwd.mkdir()
        login = {"grant_type": "password", "username": "reader@example.com", "password": PASSWORD}
        with (
            serving(database_url, data_dir, cwd, wrapper=WITHOUT_PRIVILEGES) as server,
            httpx.Client(base_url=server.base_url, timeout=10.0) as http,
        ):
            assert http.get("/healthz").status_code == 200
            assert_unavailable(http.get("/readyz"))
            assert_unavailable(http.post("/token", data=login))
            log = server.log()
        assert "database unavailable: OperationalError: attempt to write a readonly database" in log
        assert "reader@example.com" not in log  # the statement's parameters stay out


class TestFullSQLite:
    """A database that cannot grow (SQLite's own size limit; a full disk says the same)."""

    @pytest.fixture
    def database_file(self, tmp_path: Path) -> Path:
        return tmp_path / "full.db"

    @pytest.fixture
    def database_url(self, database_file: Path) -> str:
        url = f"sqlite+aiosqlite:///{database_file}"
        migrate.upgrade(url)
        return url

    async def test_readyz_is_503_and_the_log_names_the_cause(
        self,
        client: httpx.AsyncClient,
        context: AppContext,
        database_file: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        with sqlite3.connect(database_file) as database:
            database.execute("VACUUM")  # no free page left: a new one must grow the file
        # The app's one connection, which keeps the limit.
        async with context.engine.connect() as connection:
            pages = (await connection.exec_driver_sql("PRAGMA page_count")).scalar_one()
            await connection.exec_driver_sql(f"PRAGMA max_page_count = {pages}")

        assert_unavailable(await client.get("/readyz"))
        assert "database unavailable: OperationalError: database or disk is full" in caplog.text

        async with context.engine.connect() as connection:
            await connection.exec_driver_sql(f"PRAGMA max_page_count = {pages + 10}")
        assert (await client.get("/readyz")).status_code == 200
        # Probes reuse the page they freed: they do not grow the file.
        for _ in range(3):
            assert (await client.get("/readyz")).status_code == 200
        async with context.engine.connect() as connection:
            assert (await connection.exec_driver_sql("PRAGMA page_count")).scalar_one() <= (
                pages + 10
            )


async def set_postgresql_read_only(read_only: bool) -> None:
    """Make new connections to the tests' database read-only, as on a hot standby."""
    admin = make_url(POSTGRES_SERVER_URL).set(drivername="postgresql")
    database = make_url(POSTGRES_URL).database
    setting = (
        "SET default_transaction_read_only = on"
        if read_only
        else "RESET default_transaction_read_only"
    )
    connection = await asyncpg.connect(admin.render_as_string(hide_password=False), timeout=10)
    try:
        await connection.execute(f'ALTER DATABASE "{database}" {setting}')
    finally:
        await connection.close()


@pytest.mark.parametrize("backend", ["postgresql"])
class TestReadOnlyPostgreSQL:
    async def test_readyz_and_logins_are_503_until_it_takes_writes_again(
        self, client: httpx.AsyncClient, context: AppContext, caplog: pytest.LogCaptureFixture
    ) -> None:
        user = await register(client)
        # The sender, woken by the sign-up's mail, may hold a connection: one checked out
        # across dispose() would go back to the old pool and be left to the collector.
        await context.mail_sender.stop()
        await set_postgresql_read_only(True)
        await context.engine.dispose()  # the pool's next connections take the setting
        login = {"grant_type": "password", "username": user["email"], "password": PASSWORD}
        try:
            assert_unavailable(await client.get("/readyz"))
            assert_unavailable(await client.post("/token", data=login))
        finally:
            await set_postgresql_read_only(False)
        assert "cannot execute UPDATE in a read-only transaction" in caplog.text
        assert user["email"] not in caplog.text
        # The read-only connections were replaced: the next ones write, no restart.
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.post("/token", data=login)).status_code == 200


@pytest.fixture
async def unreachable_database_client(data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    # Port 9 on loopback: nothing listens there, connections are refused at once.
    settings = make_settings(
        "postgresql+asyncpg://postgres@127.0.0.1:9/nothing", data_dir, db_timeout=2
    )
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


class TestDatabaseUnreachable:
    async def test_readyz_is_503(self, unreachable_database_client: httpx.AsyncClient) -> None:
        response = await unreachable_database_client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["error"] == "temporarily_unavailable"
        assert response.headers["retry-after"]

    async def test_database_endpoints_are_503_with_json(
        self, unreachable_database_client: httpx.AsyncClient
    ) -> None:
        for response in (
            await unreachable_database_client.post(
                "/users", json={"email": "a@example.com", "password": "long enough"}
            ),
            await unreachable_database_client.post(
                "/token",
                data={"grant_type": "password", "username": "a@example.com", "password": "x"},
            ),
        ):
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "temporarily_unavailable"

    async def test_token_only_endpoints_keep_working(
        self,
        client: httpx.AsyncClient,
        unreachable_database_client: httpx.AsyncClient,
        data_dir: Path,
    ) -> None:
        # Same data directory, where the healthy app left the public keys it read: a
        # token it signed is verified by the app whose database is down.
        _, tokens = await registered_login(client)
        saved = json.loads((data_dir / published.FILE_NAME).read_text())
        assert all(
            set(jwk) <= {"kty", "crv", "x", "y", "n", "e", "kid", "alg", "use"}
            for jwk in saved["keys"]
        )  # public parts only
        response = await unreachable_database_client.get("/whoami", headers=bearer(tokens))
        assert response.status_code == 200
        jwks = await unreachable_database_client.get("/.well-known/jwks.json")
        assert jwks.status_code == 200
