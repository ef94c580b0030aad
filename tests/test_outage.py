"""Database outage: PostgreSQL dies in the middle of a load, then comes back.

While it is down every answer that needs the database is a 503 with the contract's JSON
body and `Retry-After` (never another 5xx, never an exception out of the app), and the
endpoints that never need it (`/whoami`, the JWKS, `/users/me` once a session's profile
is in memory) keep answering, and a session
revoked before the outage stays refused. When it is back, the same app instance
recovers without a restart (its revocation listener too), and no session is left
half-rotated.

The test runs its own throwaway server, since it has to kill it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

from authapi import migrate
from authapi.app import create_app
from authapi.context import AppContext
from authapi.sessions.rotation import RefreshTokenCodec
from tests.support.factories import PASSWORD, bearer, login, register
from tests.support.settings import make_settings

PG_BIN = Path(os.environ.get("AUTHAPI_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
# PostgreSQL refuses to run as root: as root, its binaries run as this OS user.
PG_OS_USER = "postgres"

SESSIONS = 6  # users, each with one session refreshed by its own task
LOGIN_TASKS = 2  # tasks doing password logins
MAX_STEPS = 400  # per task: the load is bounded by count as well as by the deadlines
PAUSE = 0.01  # between a task's steps, so that instant 503s do not spin the loop
DEADLINE = 20.0  # seconds, for each wait of the test (they normally take well under one)
# Long enough that a refresh whose response was lost in the outage can still be retried
# when the server is back (the test checks this against the stored rotation time).
REUSE_GRACE = 120


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ThrowawayPostgres:
    """A PostgreSQL server of our own in a temporary directory, listening on 127.0.0.1
    only, with trust authentication; stopped and started again on the same port."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.port = _free_port()
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/authapi"
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/authapi"
        self._as_owner: list[str] = []

    def _run(self, program: str, *args: str, check: bool = True) -> None:
        result = subprocess.run(  # noqa: S603 - fixed programs, arguments of our own
            [*self._as_owner, str(PG_BIN / program), *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{program} {' '.join(args)} exited with {result.returncode}:\n"
                f"{result.stdout}{result.stderr}\n--- server log ---\n{self.log_tail()}"
            )

    def log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])
        except OSError:
            return "(no log)"

    def create(self) -> None:
        if os.geteuid() == 0:
            owner = pwd.getpwnam(PG_OS_USER)
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._as_owner = [shutil.which("runuser") or "runuser", "-u", PG_OS_USER, "--"]
        # --no-sync: a throwaway cluster need not survive a power cut, only process kills.
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "authapi")

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port}"
            f" -c unix_socket_directories={self.root}"
        )
        self._run(
            "pg_ctl",
            "start",
            "-w",
            "-t",
            "30",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
        )

    def stop(self, mode: str, *, check: bool = True) -> None:
        self._run("pg_ctl", "stop", "-w", "-t", "30", "-D", str(self.data), "-m", mode, check=check)

    def _postmaster(self) -> int | None:
        """The process id of this server's postmaster, if it runs."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
            command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        # A stale file may name a process id that now belongs to somebody else.
        return pid if str(self.data).encode() in command_line else None

    def destroy(self) -> None:
        """Stop the server if it runs (whatever state the test left it in), then remove
        its directory."""
        try:
            if self._postmaster() is not None:
                self.stop("immediate", check=False)
            pid = self._postmaster()
            if pid is not None:  # pg_ctl could not stop it: kill the postmaster we started
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        finally:
            shutil.rmtree(self.root)


@pytest.fixture
def postgres() -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres(Path(tempfile.mkdtemp(prefix="authapi-pg-")))
    try:
        server.create()
        migrate.upgrade(server.url)
        yield server
    finally:
        server.destroy()


@dataclass
class ClientSession:
    """What one client knows of its session."""

    email: str
    session_id: uuid.UUID
    access_token: str
    refresh_token: str  # the newest one a 200 handed out
    generation: int  # of `refresh_token`
    # Refresh tokens that were sent but got no 200 (a 503: the rotation may or may not
    # have been committed).
    unanswered: set[str] = field(default_factory=set)
    refreshes: int = 0
    refused_while_down: int = 0


@dataclass
class Exchange:
    request: str
    response: httpx.Response
    started_while_down: bool


class Load:
    """Clients hammering the app; records every answer, and every exception that
    escaped the app (the failure this test is after)."""

    def __init__(self, client: httpx.AsyncClient, codec: RefreshTokenCodec) -> None:
        self.client = client
        self.codec = codec
        self.database_down = False
        self.stopping = asyncio.Event()
        self.exchanges: list[Exchange] = []
        self.escaped: list[str] = []
        self.problems: list[str] = []
        self.logins = 0
        self.logins_refused_while_down = 0

    async def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        down = self.database_down
        try:
            response = await self.client.request(method, path, **kwargs)
        except Exception as exc:  # raised out of the ASGI app: a 500 in production
            self.escaped.append(f"{method} {path}: {exc!r}")
            return None
        self.exchanges.append(Exchange(f"{method} {path}", response, down))
        return response

    async def refresh(self, session: ClientSession) -> None:
        """Two tabs refresh with the same, newest token at once."""
        sent = session.refresh_token
        down = self.database_down
        responses = await asyncio.gather(
            *(self.send("POST", "/refresh", json={"refresh_token": sent}) for _ in range(2))
        )
        ok = [r.json() for r in responses if r is not None and r.status_code == 200]
        if not ok:
            session.unanswered.add(sent)
            if down:
                session.refused_while_down += 1
            return
        new_tokens = {body["refresh_token"] for body in ok}
        claims = self.codec.decode(next(iter(new_tokens)))
        if len(new_tokens) != 1 or claims is None or claims.generation != session.generation + 1:
            self.problems.append(f"session {session.session_id}: {sent} was answered {ok}")
            return
        session.refresh_token = ok[0]["refresh_token"]
        session.access_token = ok[0]["access_token"]
        session.generation = claims.generation
        session.refreshes += 1

    async def use_session(self, session: ClientSession) -> None:
        for _ in range(MAX_STEPS):
            if self.stopping.is_set():
                return
            await self.refresh(session)
            await self.send("GET", "/users/me", headers=bearer(session.access_token))
            await self.send("GET", "/whoami", headers=bearer(session.access_token))
            await asyncio.sleep(PAUSE)

    async def log_in_repeatedly(self, email: str) -> None:
        form = {"grant_type": "password", "username": email, "password": PASSWORD}
        for _ in range(MAX_STEPS):
            if self.stopping.is_set():
                return
            down = self.database_down
            response = await self.send("POST", "/token", data=form)
            if response is not None and response.status_code == 200:
                self.logins += 1
            elif response is not None and response.status_code == 503 and down:
                self.logins_refused_while_down += 1
            await asyncio.sleep(PAUSE)


async def wait_until(condition: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    """Poll `condition()` (sync or async) until it is true; fail after DEADLINE."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        await asyncio.sleep(0.02)
    pytest.fail(f"timed out waiting until {what}")


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "temporarily_unavailable", response.text
    assert response.headers.get("retry-after"), response.headers


def assert_load_answered_well(load: Load) -> None:
    """Only 200s and proper 503s, the 503s exactly where the database was needed."""
    assert not load.escaped, "exceptions escaped the app:\n" + "\n".join(load.escaped[:20])
    assert not load.problems, "\n".join(load.problems[:20])
    statuses: dict[str, set[int]] = {}
    for exchange in load.exchanges:
        status = exchange.response.status_code
        statuses.setdefault(exchange.request, set()).add(status)
        assert status in (200, 503), f"{exchange.request}: {exchange.response.text}"
        if status == 503:
            assert_unavailable(exchange.response)
        if exchange.started_while_down:
            # Started after the server was gone: only what needs no database succeeds:
            # /whoami, and /users/me of a session whose profile is in memory (each
            # session's first call came before the outage).
            expected = 200 if exchange.request in ("GET /whoami", "GET /users/me") else 503
            assert status == expected, f"{exchange.request} while down: {status}"
    assert statuses == {
        "POST /refresh": {200, 503},
        "GET /users/me": {200},
        "GET /whoami": {200},
        "POST /token": {200, 503},
    }


async def stored_sessions(server: ThrowawayPostgres) -> dict[uuid.UUID, asyncpg.Record]:
    connection = await asyncpg.connect(server.dsn, timeout=10)
    try:
        rows = await connection.fetch(
            "SELECT id, generation, rotated_at, revoked_at, revoked_reason FROM sessions"
        )
    finally:
        await connection.close()
    return {row["id"]: row for row in rows}


class TestDatabaseOutage:
    @pytest.mark.parametrize("stop_mode", ["immediate", "fast"])
    async def test_503_while_down_and_recovery_without_restart(
        self, postgres: ThrowawayPostgres, data_dir: Path, stop_mode: str
    ) -> None:
        settings = make_settings(
            postgres.url,
            data_dir,
            db_timeout=2,
            refresh_reuse_grace=REUSE_GRACE,
            # Not what this test is about: its clients all come from one address.
            rate_limit_enabled=False,
        )
        app = create_app(settings)
        transport = httpx.ASGITransport(app=app)
        async with (
            LifespanManager(app),
            httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
        ):
            context: AppContext = app.state.context
            codec = context.refresh_tokens
            sessions = []
            for _ in range(SESSIONS):
                user = await register(client)
                tokens = await login(client, user["email"])
                claims = codec.decode(tokens["refresh_token"])
                assert claims is not None
                sessions.append(
                    ClientSession(
                        email=user["email"],
                        session_id=claims.session_id,
                        access_token=tokens["access_token"],
                        refresh_token=tokens["refresh_token"],
                        generation=claims.generation,
                    )
                )
            # A session revoked before the outage, to stay refused through it.
            revoked = await login(client, sessions[0].email)
            logout = await client.post("/logout", json={"refresh_token": revoked["refresh_token"]})
            assert logout.status_code == 204, logout.text
            load = Load(client, codec)
            tasks = [asyncio.create_task(load.use_session(s)) for s in sessions]
            tasks += [
                asyncio.create_task(load.log_in_repeatedly(sessions[i].email))
                for i in range(LOGIN_TASKS)
            ]
            try:
                # 1. The load is in full swing; the server dies in the middle of it.
                await wait_until(
                    # (or an exception escaped: reported below)
                    lambda: (
                        bool(load.escaped)
                        or (all(s.refreshes >= 2 for s in sessions) and load.logins >= 2)
                    ),
                    "every session refreshed and logins succeeded",
                )
                await asyncio.to_thread(postgres.stop, stop_mode)
                load.database_down = True

                # 2. While it is down: 503 for what needs it, 200 for what does not.
                assert_unavailable(await client.get("/readyz"))
                whoami = await client.get("/whoami", headers=bearer(sessions[0].access_token))
                assert whoami.status_code == 200, whoami.text
                whoami = await client.get("/whoami", headers=bearer(revoked))
                assert whoami.status_code == 401, whoami.text
                jwks = await client.get("/.well-known/jwks.json")
                assert jwks.status_code == 200, jwks.text
                assert jwks.json()["keys"]
                await wait_until(
                    lambda: (
                        bool(load.escaped)
                        or (
                            all(s.refused_while_down >= 2 for s in sessions)
                            and load.logins_refused_while_down >= 2
                        )
                    ),
                    "every client met the outage",
                )
                assert_unavailable(await client.get("/readyz"))
            finally:
                load.stopping.set()
                await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE)
            assert_load_answered_well(load)

            # 3. The server comes back: the same app instance recovers.
            await asyncio.to_thread(postgres.start)

            async def ready() -> bool:
                response = await client.get("/readyz")
                if response.status_code != 200:
                    assert_unavailable(response)
                return response.status_code == 200

            await wait_until(ready, "/readyz answers 200 again")
            feed = context.revocation_feed
            await wait_until(lambda: feed.listening, "the revocation listener is back")
            tokens = await login(client, sessions[0].email)
            assert (await client.get("/users/me", headers=bearer(tokens))).status_code == 200
            await register(client)

            # 4. No session is half-rotated. Rotation is one conditional UPDATE whose
            # commit happened or not; a client only ever presents the newest token it
            # got a 200 for (generation g). So the stored generation G is g (nothing of
            # it committed, or nothing in flight) or g + 1 (a rotation committed but its
            # answer was lost: then that token was sent without getting a 200, it is
            # still within the grace window, and presenting it again answers the
            # session's newest token without advancing the session further). Never
            # less (a 200 that hid a lost commit), never more, never revoked.
            stored = await stored_sessions(postgres)
            now = datetime.now(UTC)
            for session in sessions:
                row = stored[session.session_id]
                where = f"session {session.session_id} (client at generation {session.generation})"
                assert row["revoked_at"] is None, f"{where} revoked: {row['revoked_reason']}"
                assert row["generation"] in (session.generation, session.generation + 1), (
                    f"{where} is stored at generation {row['generation']}"
                )
                response = await client.post(
                    "/refresh", json={"refresh_token": session.refresh_token}
                )
                assert response.status_code == 200, f"{where}: {response.text}"
                answered = codec.decode(response.json()["refresh_token"])
                assert answered is not None
                if row["generation"] == session.generation + 1:
                    assert session.refresh_token in session.unanswered, where
                    assert row["rotated_at"] is not None, where
                    assert now - row["rotated_at"] <= timedelta(seconds=REUSE_GRACE), where
                    # The grace answer: the session's newest token, and no further advance.
                    assert answered.generation == row["generation"], where
                    after = (await stored_sessions(postgres))[session.session_id]
                    assert after["generation"] == row["generation"], where
                else:
                    assert answered.generation == session.generation + 1, where
                # And the session keeps rotating normally.
                again = await client.post(
                    "/refresh", json={"refresh_token": response.json()["refresh_token"]}
                )
                assert again.status_code == 200, f"{where}: {again.text}"
