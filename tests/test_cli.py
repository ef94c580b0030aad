"""The `authapi` command, run as a real process the way an operator runs it."""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from authapi import migrate
from authapi.context import AppContext
from authapi.db import transaction
from authapi.sessions.models import LoginSession
from authapi.users.models import User
from tests.support.database import POSTGRES_URL, recreate_postgres_database
from tests.support.factories import PASSWORD, bearer, login, new_email, register
from tests.support.servers import (
    COMMAND_TIMEOUT,
    SERVER_START_TIMEOUT,
    authapi_env,
    free_port,
    run_authapi,
    serving,
)


async def user_by_email(context: AppContext, email: str) -> User | None:
    async with context.sessionmaker() as db:
        return await db.scalar(select(User).where(User.email == email))


class TestCreateUser:
    async def test_creates_an_admin_who_can_log_in(
        self, client: httpx.AsyncClient, database_url: str, data_dir: Path, tmp_path: Path
    ) -> None:
        email = new_email()
        result = run_authapi(
            "create-user",
            email,
            "--role",
            "admin",
            stdin=PASSWORD + "\n",
            env=authapi_env(database_url, data_dir),
            cwd=tmp_path,
        )

        assert result.returncode == 0, result.stderr
        assert email in result.stdout
        assert PASSWORD not in result.stdout + result.stderr
        tokens = await login(client, email)
        me = await client.get("/users/me", headers=bearer(tokens))
        assert me.status_code == 200
        assert me.json()["email"] == email
        assert me.json()["role"] == "admin"
        whoami = await client.get("/whoami", headers=bearer(tokens))
        assert whoami.json()["role"] == "admin"

    async def test_role_defaults_to_user(
        self, client: httpx.AsyncClient, database_url: str, data_dir: Path, tmp_path: Path
    ) -> None:
        email = new_email()
        result = run_authapi(
            "create-user",
            email,
            stdin=PASSWORD + "\n",
            env=authapi_env(database_url, data_dir),
            cwd=tmp_path,
        )

        assert result.returncode == 0, result.stderr
        tokens = await login(client, email)
        me = await client.get("/users/me", headers=bearer(tokens))
        assert me.json()["role"] == "user"

    async def test_too_short_password_is_refused(
        self, context: AppContext, database_url: str, data_dir: Path, tmp_path: Path
    ) -> None:
        email = new_email()
        result = run_authapi(
            "create-user",
            email,
            stdin="Qz7!xw\n",
            env=authapi_env(database_url, data_dir),
            cwd=tmp_path,
        )

        assert result.returncode == 1
        assert result.stderr.startswith("authapi: password:")
        assert "at least 8 characters" in result.stderr
        assert "Traceback" not in result.stderr
        assert "Qz7!xw" not in result.stderr
        assert await user_by_email(context, email) is None

    @pytest.mark.parametrize("spelling", ["dup@example.com", " Dup@EXAMPLE.com"])
    async def test_duplicate_email_is_refused(
        self,
        client: httpx.AsyncClient,
        context: AppContext,
        database_url: str,
        data_dir: Path,
        tmp_path: Path,
        spelling: str,
    ) -> None:
        await register(client, "dup@example.com")
        existing = await user_by_email(context, "dup@example.com")
        assert existing is not None

        result = run_authapi(
            "create-user",
            spelling,
            "--role",
            "admin",
            stdin="another password\n",
            env=authapi_env(database_url, data_dir),
            cwd=tmp_path,
        )

        assert result.returncode == 1
        assert "a user with email dup@example.com already exists" in result.stderr
        assert "Traceback" not in result.stderr
        unchanged = await user_by_email(context, "dup@example.com")
        assert unchanged is not None
        assert (unchanged.password_hash, unchanged.role) == (existing.password_hash, "user")


class TestPrune:
    async def test_deletes_only_sessions_that_ended_before_the_access_token_ttl(
        self,
        client: httpx.AsyncClient,
        context: AppContext,
        database_url: str,
        data_dir: Path,
        tmp_path: Path,
    ) -> None:
        user = await register(client)
        logged_in = await login(client, user["email"])
        whoami = await client.get("/whoami", headers=bearer(logged_in))
        login_session = uuid.UUID(whoami.json()["sid"])
        ttl = timedelta(seconds=context.settings.access_token_ttl)
        now = datetime.now(UTC)
        day = timedelta(days=1)

        def session(*, expires_at: datetime, revoked_at: datetime | None = None) -> LoginSession:
            return LoginSession(
                id=uuid.uuid4(),
                user_id=uuid.UUID(user["id"]),
                generation=0,
                scope="profile",
                created_at=now - 30 * day,
                last_used_at=now - 30 * day,
                rotated_at=None,
                expires_at=expires_at,
                absolute_expires_at=now + day,
                # Revocation ends a session at once: it sets expires_at to that instant.
                revoked_at=revoked_at,
                revoked_reason="logout" if revoked_at else None,
                user_agent=None,
                ip=None,
            )

        long_ago = now - ttl - timedelta(hours=1)
        recently = now - ttl / 5  # its access tokens may still be in use: kept
        ended_long_ago = [
            *(session(expires_at=long_ago - i * day) for i in range(3)),
            *(
                session(expires_at=long_ago - i * day, revoked_at=long_ago - i * day)
                for i in (0, 1)
            ),
        ]
        kept = [
            session(expires_at=now + day),
            session(expires_at=recently),
            session(expires_at=recently, revoked_at=recently),
        ]
        async with transaction(context.sessionmaker) as db:
            db.add_all([*ended_long_ago, *kept])

        # 5 to delete in batches of 2: two full batches and a partial one.
        result = run_authapi(
            "prune",
            "--batch-size",
            "2",
            env=authapi_env(database_url, data_dir),
            cwd=tmp_path,
        )

        assert result.returncode == 0, result.stderr
        assert "deleted 5 ended sessions" in result.stdout
        async with context.sessionmaker() as db:
            remaining = set(await db.scalars(select(LoginSession.id)))
        assert remaining == {item.id for item in kept} | {login_session}
        # The real login is untouched and still refreshes.
        response = await client.post("/refresh", json={"refresh_token": logged_in["refresh_token"]})
        assert response.status_code == 200, response.text


class TestServe:
    def test_login_refresh_logout_over_tcp(
        self, backend: str, database_urls: dict[str, str], data_dir: Path, tmp_path: Path
    ) -> None:
        if backend == "sqlite":
            # A file that does not exist yet: `serve` creates and migrates it.
            database_file = tmp_path / "serve.db"
            database_url = f"sqlite+aiosqlite:///{database_file}"
        else:
            database_url = database_urls[backend]  # migrated by the session fixture
        email = f"e2e-{uuid.uuid4().hex}@example.com"

        with (
            serving(database_url, data_dir, tmp_path) as server,
            httpx.Client(base_url=server.base_url, timeout=10.0) as http,
        ):
            assert http.get("/readyz").status_code == 200

            registered = http.post("/users", json={"email": email, "password": PASSWORD})
            assert registered.status_code == 201, registered.text
            user = registered.json()

            token = http.post(
                "/token",
                data={"grant_type": "password", "username": email, "password": PASSWORD},
            )
            assert token.status_code == 200, token.text
            assert token.headers["cache-control"] == "no-store"
            tokens = token.json()
            assert tokens["token_type"] == "Bearer"
            assert tokens["refresh_token"].startswith("rt_")

            whoami = http.get("/whoami", headers=bearer(tokens))
            assert whoami.status_code == 200, whoami.text
            assert whoami.json()["sub"] == user["id"]

            refreshed = http.post("/refresh", json={"refresh_token": tokens["refresh_token"]})
            assert refreshed.status_code == 200, refreshed.text
            latest = refreshed.json()["refresh_token"]
            assert latest != tokens["refresh_token"]

            logout = http.post("/logout", json={"refresh_token": latest})
            assert logout.status_code == 204, logout.text

            after = http.post("/refresh", json={"refresh_token": latest})
            assert after.status_code == 400, after.text
            assert after.json()["error"] == "invalid_grant"

        # SIGTERM is a graceful stop: the lifespan ran to its end (uvicorn then re-raises
        # the signal, so the status is -SIGTERM; older versions exit 0).
        assert server.process.returncode in (0, -signal.SIGTERM), server.log()
        assert "Application shutdown complete" in server.log()
        if backend == "sqlite":
            assert database_file.is_file()

    def test_a_burst_of_new_connections_is_answered_whole(
        self, database_url: str, data_dir: Path, tmp_path: Path
    ) -> None:
        # serve's protocol reads such a burst a few connections per turn of its event
        # loop (connection_pacing.py): each request, held until its turn, is answered.
        with serving(database_url, data_dir, tmp_path) as server:
            address = ("127.0.0.1", int(server.base_url.rsplit(":", 1)[1]))
            request = b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
            sockets = [socket.create_connection(address, timeout=10) for _ in range(64)]
            try:
                for sock in sockets:
                    sock.sendall(request)
                answers = [sock.makefile("rb").read() for sock in sockets]
            finally:
                for sock in sockets:
                    sock.close()

        assert all(answer.startswith(b"HTTP/1.1 200 OK") for answer in answers)
        assert all(answer.endswith(b'"status":"ok"}') for answer in answers), answers[0]

    def test_past_the_concurrency_limit_uvicorn_answers_503(
        self, database_url: str, data_dir: Path, tmp_path: Path
    ) -> None:
        limit = ("--limit-concurrency", "2")
        with (
            serving(database_url, data_dir, tmp_path, serve_args=limit) as server,
            httpx.Client(base_url=server.base_url, timeout=10.0) as held,
        ):
            # Answered once the health check's connection has closed: then the held one
            # is the only connection open, and it stays open (keep-alive).
            deadline = time.monotonic() + SERVER_START_TIMEOUT
            while held.get("/healthz").status_code != 200:
                assert time.monotonic() < deadline, server.log()
            with httpx.Client(base_url=server.base_url, timeout=10.0) as second:
                refused = second.get("/healthz")

        assert refused.status_code == 503
        assert refused.text == "Service Unavailable"  # uvicorn's own, not the app's

    @pytest.mark.parametrize("value", ["0", "many"])
    def test_a_concurrency_limit_below_one_is_a_usage_error(
        self, tmp_path: Path, value: str
    ) -> None:
        result = run_authapi(
            "serve", "--limit-concurrency", value, env=authapi_env(None, tmp_path), cwd=tmp_path
        )

        assert result.returncode == 2
        assert "--limit-concurrency" in result.stderr

    def test_refuses_an_unmigrated_postgresql_database(
        self, empty_postgres_url: str, data_dir: Path, tmp_path: Path
    ) -> None:
        result = run_authapi(
            "serve",
            "--port",
            str(free_port()),
            env=authapi_env(empty_postgres_url, data_dir),
            cwd=tmp_path,
        )

        assert result.returncode != 0
        assert "authapi migrate" in result.stderr
        assert "Traceback" not in result.stderr


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    """A database without any schema, named after the run's own (so runs side by side
    do not collide)."""
    url = make_url(POSTGRES_URL)
    empty = url.set(database=f"{url.database}_unmigrated").render_as_string(hide_password=False)
    asyncio.run(recreate_postgres_database(empty))
    yield empty
    asyncio.run(recreate_postgres_database(empty, create=False))


class TestMigrate:
    @pytest.mark.parametrize("layout", ["empty file", "default file in a new data dir"])
    def test_brings_a_new_sqlite_database_to_head(self, tmp_path: Path, layout: str) -> None:
        data_dir = tmp_path / "data"
        if layout == "empty file":
            db_file = tmp_path / "empty.db"
            db_file.touch()
            env = authapi_env(f"sqlite+aiosqlite:///{db_file}", data_dir)
        else:
            db_file = data_dir / "authapi.db"  # the embedded default
            env = authapi_env(None, data_dir)

        for _ in range(2):  # and running it again changes nothing
            result = run_authapi("migrate", env=env, cwd=tmp_path)
            assert result.returncode == 0, result.stderr
            assert "latest schema" in result.stdout

        with sqlite3.connect(db_file) as connection:
            tables = {
                name
                for (name,) in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type='table'"
                )
            }
            (version,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        connection.close()
        assert {"users", "sessions", "alembic_version"} <= tables
        assert version == migrate.head_revision()


class TestOperatorMistakes:
    @pytest.mark.parametrize(
        "url",
        [
            "postgresql+asyncpg://postgres@127.0.0.1:9/nothing",  # nothing listens on port 9
            "sqlite+aiosqlite:////nonexistent-dir/authapi.db",
        ],
    )
    @pytest.mark.parametrize("command", [("migrate",), ("serve",), ("prune",)])
    def test_unusable_database_is_a_message_not_a_traceback(
        self, tmp_path: Path, url: str, command: tuple[str, ...]
    ) -> None:
        result = run_authapi(*command, env=authapi_env(url, tmp_path / "data"), cwd=tmp_path)
        assert result.returncode == 1
        assert "authapi: cannot use the database" in result.stderr
        assert "Traceback" not in result.stderr

    @pytest.mark.parametrize("size", ["0", "-1", "many"])
    def test_prune_batch_size_must_be_positive(self, tmp_path: Path, size: str) -> None:
        result = run_authapi(
            "prune", "--batch-size", size, env=authapi_env(None, tmp_path), cwd=tmp_path
        )
        assert result.returncode == 2
        assert "--batch-size" in result.stderr


class TestMalformedDatabaseUrl:
    """A URL the service cannot use is one line that says what to write, from every
    command, and never repeats the URL (it may hold a password)."""

    @pytest.mark.parametrize(
        ("url", "advice"),
        [
            ("garbage", "write postgresql+asyncpg://USER:PASSWORD@HOST:5432/DATABASE"),
            ("postgresql://", "write postgresql+asyncpg://… instead of postgresql://…"),
            ("postgres://app:hunter2@db/authapi", "write postgresql+asyncpg://…"),
            ("mysql://root:hunter2@db/authapi", "mysql is not supported"),
            ("sqlite:///", "write sqlite+aiosqlite:///… instead of sqlite:///…"),
            ("sqlite+aiosqlite://", "name the database file"),
        ],
    )
    @pytest.mark.parametrize("command", ["serve", "migrate"])
    def test_is_one_line_that_says_what_to_write(
        self, tmp_path: Path, url: str, advice: str, command: str
    ) -> None:
        result = run_authapi(command, env=authapi_env(url, tmp_path / "data"), cwd=tmp_path)

        assert result.returncode == 1
        assert result.stderr.startswith("authapi: invalid settings: AUTHAPI_DATABASE_URL: ")
        assert advice in result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert "hunter2" not in result.stderr


class TestHelp:
    def test_serve_describes_each_option_and_its_default(self, tmp_path: Path) -> None:
        result = run_authapi("serve", "--help", env=authapi_env(None, tmp_path), cwd=tmp_path)

        assert result.returncode == 0
        help_text = " ".join(result.stdout.split())  # as argparse wraps it
        assert "address to listen on; 0.0.0.0 or :: for every interface" in help_text
        assert "(default: 127.0.0.1)" in help_text
        assert "TCP port to listen on (default: 8000)" in help_text
        assert "(default: 1)" in help_text
        assert "AUTHAPI_ISSUER" in help_text

    def test_serve_describes_the_concurrency_limit(self, tmp_path: Path) -> None:
        result = run_authapi("serve", "--help", env=authapi_env(None, tmp_path), cwd=tmp_path)

        assert result.returncode == 0
        help_text = " ".join(result.stdout.split())
        assert "[--limit-concurrency N]" in help_text
        assert "answer a request with 503 at once" in help_text
        assert "(uvicorn's limit_concurrency); unset, no limit" in help_text

    def test_top_level_points_to_the_configuration_reference(self, tmp_path: Path) -> None:
        result = run_authapi("--help", env=authapi_env(None, tmp_path), cwd=tmp_path)

        assert result.returncode == 0
        assert "every one is in docs/configuration.md" in " ".join(result.stdout.split())


class TestPortInUse:
    def test_is_one_line_on_stderr_and_a_failure(self, tmp_path: Path) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            port = holder.getsockname()[1]

            result = run_authapi(
                "serve", "--port", str(port), env=authapi_env(None, tmp_path), cwd=tmp_path
            )

        assert result.returncode == 1
        assert result.stderr == (
            f"authapi: cannot listen on 127.0.0.1:{port}: the address is already in use "
            "(another server?); stop it or choose another --port\n"
        )

    @pytest.mark.parametrize("port", ["0", "65536", "http"])
    def test_a_port_out_of_range_is_a_usage_error(self, tmp_path: Path, port: str) -> None:
        result = run_authapi("serve", "--port", port, env=authapi_env(None, tmp_path), cwd=tmp_path)

        assert result.returncode == 2
        assert "--port" in result.stderr


# `authapi serve` as its console script runs it, and then the number of objects the
# interpreter's exit would still collect garbage over.
COUNT_AT_EXIT = """
import gc, sys
from authapi.cli import main
status = main(sys.argv[1:])
print("objects left to collect:", len(gc.get_objects()), flush=True)
sys.exit(status)
"""


class TestServeStops:
    def test_with_workers_sigterm_leaves_no_garbage_collection_to_the_exit(
        self, database_url: str, data_dir: Path, tmp_path: Path
    ) -> None:
        """With several workers the supervisor exits normally after a SIGTERM, and the
        interpreter's exit collected garbage over the whole app it had imported (some
        120,000 objects): 1.2 s to 1.5 s of the ~2 s an idle server took to stop."""
        with serving(
            database_url, data_dir, tmp_path, workers=2, entry=("-c", COUNT_AT_EXIT)
        ) as server:
            server.process.terminate()
            server.process.wait(timeout=COMMAND_TIMEOUT)

        process = server.process
        assert process.returncode == 0, server.log()
        assert server.log().count("Application shutdown complete") == 2  # both workers
        [line] = [line for line in server.log().splitlines() if "objects left" in line]
        assert int(line.rsplit(" ", 1)[1]) < 1_000, line
