"""Scale-out: several instances behind a load balancer with no sticky sessions, worker
processes, and a graceful shutdown that lets in-flight requests finish."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import httpx

from tests.support.factories import PASSWORD, bearer, login, register
from tests.support.redis import REDIS_URL
from tests.support.servers import COMMAND_TIMEOUT, authapi_env, instances, run_authapi, serving


async def test_a_client_alternating_between_two_instances(
    database_urls: dict[str, str], data_dir: Path, tmp_path: Path
) -> None:
    """The deployment of compose.yaml: two instances on one PostgreSQL and one Redis;
    each request of one client goes to either, as a round-robin proxy sends them."""
    env = {
        "AUTHAPI_RATE_LIMIT_STORAGE": REDIS_URL,
        "AUTHAPI_RATE_LIMIT_KEY_PREFIX": f"authapi-test-{uuid.uuid4().hex}",
    }
    with instances(database_urls["postgresql"], data_dir, tmp_path, env=env) as (one, two):
        async with (
            httpx.AsyncClient(base_url=one.base_url, timeout=10.0) as a,
            httpx.AsyncClient(base_url=two.base_url, timeout=10.0) as b,
        ):
            user = await register(a)
            tokens = await login(a, user["email"])
            assert (await b.get("/users/me", headers=bearer(tokens))).json()["id"] == user["id"]

            # Refresh on the other instance, then again on the first with the new token.
            refreshed = await b.post("/refresh", json={"refresh_token": tokens["refresh_token"]})
            assert refreshed.status_code == 200, refreshed.text
            tokens = refreshed.json()
            refreshed = await a.post("/refresh", json={"refresh_token": tokens["refresh_token"]})
            assert refreshed.status_code == 200, refreshed.text
            tokens = refreshed.json()
            listed = await b.get("/sessions", headers=bearer(tokens))
            assert [s["current"] for s in listed.json()] == [True]

            # Log out on the first: the second refuses both tokens.
            logout = await a.post("/logout", json={"refresh_token": tokens["refresh_token"]})
            assert logout.status_code == 204
            again = await b.post("/refresh", json={"refresh_token": tokens["refresh_token"]})
            assert again.json()["error"] == "invalid_grant"
            await wait_for_status(b, tokens, 401)

            # Rate limits are shared through Redis: the password attempts of one account
            # and address count together, whichever instance saw them (10 per 15
            # minutes, the login above included).
            for attempt in range(9):
                wrong = await (a, b)[attempt % 2].post(
                    "/token",
                    data={"grant_type": "password", "username": user["email"], "password": "x" * 8},
                )
                assert wrong.status_code == 400, wrong.text
            throttled = await b.post(
                "/token",
                data={"grant_type": "password", "username": user["email"], "password": PASSWORD},
            )
            assert throttled.status_code == 429, throttled.text


async def wait_for_status(http: httpx.AsyncClient, tokens: dict[str, str], status: int) -> None:
    """Within the instant-revocation bound of one second."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 1.0
    while (await http.get("/whoami", headers=bearer(tokens))).status_code != status:
        assert loop.time() < deadline, f"/whoami not {status} within 1 s"


async def test_worker_processes_serve_one_database(tmp_path: Path, data_dir: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'workers.db'}"
    env = {"AUTHAPI_RATE_LIMIT_ENABLED": "false"}
    with serving(database_url, data_dir, tmp_path, env=env, workers=2) as server:
        assert len(worker_processes(server.process.pid)) == 2
        # Fresh connections, so that both workers take some of them.
        for _ in range(4):
            async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as http:
                user = await register(http)
                tokens = await login(http, user["email"])
                logout = await http.post("/logout", json={"refresh_token": tokens["refresh_token"]})
                assert logout.status_code == 204
        # Every worker refuses the last session's token within the bound.
        for _ in range(10):
            async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as http:
                await wait_for_status(http, tokens, 401)


def worker_processes(pid: int) -> list[int]:
    """The children of `pid` that are multiprocessing workers (not its resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [
        int(child)
        for child in children
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


async def test_shutdown_lets_requests_in_flight_finish(tmp_path: Path, data_dir: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'shutdown.db'}"
    email = f"shutdown-{uuid.uuid4().hex}@example.com"
    env = {
        "AUTHAPI_RATE_LIMIT_ENABLED": "false",
        # One hashing thread: the logins below queue up and take a while to drain.
        "AUTHAPI_HASH_WORKERS": "1",
        "AUTHAPI_HASH_QUEUE": "64",
    }
    settings = {**authapi_env(database_url, data_dir), **env}
    assert run_authapi("migrate", env=settings, cwd=tmp_path).returncode == 0
    created = run_authapi(
        "create-user",
        email,
        env=settings,
        cwd=tmp_path,
        stdin=PASSWORD + "\n",
    )
    assert created.returncode == 0, created.stderr
    with serving(database_url, data_dir, tmp_path, env=env) as server:
        clients = [httpx.AsyncClient(base_url=server.base_url, timeout=30.0) for _ in range(16)]
        for http in clients:  # connected before the logins, so they all go out at once
            assert (await http.get("/healthz")).status_code == 200

        async def log_in(http: httpx.AsyncClient) -> int:
            try:
                response = await http.post(
                    "/token",
                    data={"grant_type": "password", "username": email, "password": PASSWORD},
                )
            finally:
                await http.aclose()
            return response.status_code

        logins = [asyncio.create_task(log_in(http)) for http in clients]
        # Once the first has been answered (after one password hash), the others are
        # in the server's hands, waiting for the hashing thread.
        await asyncio.wait(logins, return_when=asyncio.FIRST_COMPLETED)
        server.process.send_signal(signal.SIGTERM)
        statuses = await asyncio.gather(*logins)
        assert statuses == [200] * 16
        # uvicorn ends by re-raising the signal it handled, so the exit status says
        # SIGTERM; what matters is that it exits, cleanly, after the last answer.
        returncode = await asyncio.to_thread(server.process.wait, COMMAND_TIMEOUT)
        assert returncode in (0, -signal.SIGTERM), server.log()
        assert "Traceback" not in server.log()
