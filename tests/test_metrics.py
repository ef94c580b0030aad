"""GET /metrics: each metric moves as its event happens (and only once it commits),
latencies by route template, exposure settings, and several workers added up."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from authapi import metrics_export
from authapi.audit import service as audit
from authapi.client_address import Requester
from authapi.config import Settings
from authapi.context import AppContext
from authapi.db import transaction
from authapi.errors import RefreshTokenReused
from authapi.sessions import service as sessions
from authapi.sessions.models import RevokeReason
from tests.support.clock import FakeClock
from tests.support.factories import (
    PASSWORD,
    bearer,
    hashing_blocked,
    login,
    refresh,
    register,
    registered_login,
)
from tests.support.keys import KEK
from tests.support.metrics import METRICS_TOKEN, Change, Samples, parse, scrape, value
from tests.support.servers import serving
from tests.support.settings import CHEAP_HASHES, make_settings

LOGINS = "authapi_logins_total"
REVOCATIONS = "authapi_session_revocations_total"
RATE_LIMITED = "authapi_rate_limited_requests_total"
DURATION_COUNT = "authapi_http_request_duration_seconds_count"


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {**CHEAP_HASHES}


@pytest.fixture
def settings(database_url: str, data_dir: Path, settings_overrides: dict[str, object]) -> Settings:
    """Every test here scrapes with the metrics token, unless it sets its own exposure."""
    return make_settings(
        database_url, data_dir, **{"metrics_token": METRICS_TOKEN, **settings_overrides}
    )


class TestBusinessEvents:
    async def test_logins_by_result(self, client: httpx.AsyncClient) -> None:
        user = await register(client)
        async with Change(client) as change:
            await login(client, user["email"])
            wrong = await client.post(
                "/token",
                data={"grant_type": "password", "username": user["email"], "password": "nope" * 3},
            )
            assert wrong.status_code == 400
            unknown = await client.post(
                "/token",
                data={"grant_type": "password", "username": "x@example.com", "password": PASSWORD},
            )
            assert unknown.status_code == 400
        assert change(LOGINS, result="succeeded") == 1
        assert change(LOGINS, result="failed") == 2

    @pytest.mark.parametrize("settings_overrides", [{"refresh_reuse_grace": 0}])
    async def test_refreshes_and_reuse_detections(
        self, client: httpx.AsyncClient, clock: FakeClock
    ) -> None:
        _, tokens = await registered_login(client)
        async with Change(client) as change:
            assert (await refresh(client, tokens["refresh_token"])).status_code == 200
            clock.advance(0.001)
            replay = await refresh(client, tokens["refresh_token"])
            assert replay.status_code == 400
        assert change("authapi_refreshes_total") == 1
        assert change("authapi_refresh_token_reuse_detections_total") == 1
        # The reuse revoked the session, and that committed although the request failed.
        assert change(REVOCATIONS, reason="refresh_token_reused") == 1

    async def test_revocations_by_reason(self, client: httpx.AsyncClient) -> None:
        user, first = await registered_login(client)
        others = [await login(client, user["email"]) for _ in range(4)]
        async with Change(client) as change:
            logout = await client.post("/logout", json={"refresh_token": first["refresh_token"]})
            assert logout.status_code == 204
            revoke = await client.post("/revoke", data={"token": others[0]["refresh_token"]})
            assert revoke.status_code == 200
            sid = (await client.get("/whoami", headers=bearer(others[1]))).json()["sid"]
            deleted = await client.delete(f"/sessions/{sid}", headers=bearer(others[2]))
            assert deleted.status_code == 204
            # Ends the two still active (others[2] and others[3]).
            everywhere = await client.delete("/sessions", headers=bearer(others[3]))
            assert everywhere.status_code == 204
            # Already ended: nothing more is revoked, nothing more counted.
            again = await client.post("/logout", json={"refresh_token": first["refresh_token"]})
            assert again.status_code == 204
        assert change(REVOCATIONS, reason="logout") == 1
        assert change(REVOCATIONS, reason="revoked") == 1
        assert change(REVOCATIONS, reason="session_deleted") == 1
        assert change(REVOCATIONS, reason="logout_everywhere") == 2

    async def test_password_change_counts_the_sessions_it_ends(
        self, client: httpx.AsyncClient
    ) -> None:
        user, current = await registered_login(client)
        for _ in range(2):
            await login(client, user["email"])
        async with Change(client) as change:
            response = await client.post(
                "/users/me/password",
                json={"current_password": PASSWORD, "new_password": "another fine password"},
                headers=bearer(current),
            )
            assert response.status_code == 204, response.text
        assert change(REVOCATIONS, reason="password_changed") == 2


class TestOnlyWhatCommits:
    """Counted when the transaction commits: rolled-back work never happened, and the
    errors that keep their changes (`db.KeepsChanges`) count like a success."""

    @staticmethod
    async def revoke_and_record(context: AppContext, user_id: uuid.UUID, error: Exception) -> None:
        """Revoke a user's sessions and record an event, then fail with `error`."""
        async with transaction(context.sessionmaker) as db:
            now = context.clock.now()
            await sessions.revoke_all(db, user_id, RevokeReason.ENDED_BY_ADMIN, now)
            audit.record(
                db,
                audit.Event.LOGIN_SUCCEEDED,
                at=now,
                requester=Requester(ip="192.0.2.1", user_agent=None),
                user_id=user_id,
            )
            raise error

    async def test_a_rolled_back_transaction_counts_nothing(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user, tokens = await registered_login(client)
        user_id = uuid.UUID(user["id"])
        async with Change(client) as change:
            with pytest.raises(RuntimeError):
                await self.revoke_and_record(context, user_id, RuntimeError("failed after all"))
        assert change(REVOCATIONS, reason="ended_by_admin") == 0
        assert change(LOGINS, result="succeeded") == 0
        # It did not happen: the session lives on.
        assert (await refresh(client, tokens["refresh_token"])).status_code == 200

    async def test_an_error_that_keeps_changes_counts(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user, tokens = await registered_login(client)
        user_id = uuid.UUID(user["id"])
        async with Change(client) as change:
            with pytest.raises(RefreshTokenReused):
                await self.revoke_and_record(context, user_id, RefreshTokenReused(user_id))
        assert change(REVOCATIONS, reason="ended_by_admin") == 1
        assert change(LOGINS, result="succeeded") == 1
        assert (await refresh(client, tokens["refresh_token"])).status_code == 400


class TestRateLimited:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {
            **CHEAP_HASHES,
            "rate_limit_register": "1/hour",
            "rate_limit_login_failures": "2/15 minutes",
        }

    async def test_each_refused_request_counts_by_limit(self, client: httpx.AsyncClient) -> None:
        user = await register(client)
        form = {"grant_type": "password", "username": user["email"], "password": "wrong" * 3}
        async with Change(client) as change:
            for _ in range(3):  # the audit trail records the first; the metric counts all
                refused = await client.post(
                    "/users", json={"email": f"{uuid.uuid4()}@example.com", "password": PASSWORD}
                )
                assert refused.status_code == 429
            for _ in range(2):
                assert (await client.post("/token", data=form)).status_code == 400
            throttled = await client.post("/token", data=form)
            assert throttled.status_code == 429
        assert change(RATE_LIMITED, limit="register") == 3
        assert change(RATE_LIMITED, limit="login_failures") == 1
        assert change(LOGINS, result="failed") == 2  # a throttled attempt is no login


class TestGauges:
    async def test_hashing_queue_depth_counts_waiting_logins(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user = await register(client)
        samples = await scrape(client)
        capacity = context.settings.hash_workers + context.settings.hash_queue
        assert value(samples, "authapi_password_hashing_queue_capacity") == capacity
        assert value(samples, "authapi_password_hashing_queue_depth") == 0
        with hashing_blocked(context):
            logins = [asyncio.create_task(login(client, user["email"])) for _ in range(2)]
            depth = await eventually(
                client, lambda s: value(s, "authapi_password_hashing_queue_depth") == 2
            )
            assert depth
        await asyncio.gather(*logins)
        samples = await scrape(client)
        assert value(samples, "authapi_password_hashing_queue_depth") == 0

    async def test_revoked_sessions_counts_the_in_memory_set(
        self, client: httpx.AsyncClient
    ) -> None:
        _, tokens = await registered_login(client)
        before = value(await scrape(client), "authapi_revoked_sessions")
        await client.post("/logout", json={"refresh_token": tokens["refresh_token"]})
        after = value(await scrape(client), "authapi_revoked_sessions")
        assert after == before + 1

    async def test_listener_is_connected_on_postgresql_only(
        self, client: httpx.AsyncClient, backend: str
    ) -> None:
        name = "authapi_revocation_listener_connected"
        if backend == "postgresql":
            assert await eventually(client, lambda s: value(s, name) == 1)
        else:
            assert value(await scrape(client), name) == 0  # SQLite: the poll alone


async def eventually(
    client: httpx.AsyncClient, condition: Callable[[Samples], bool], within: float = 10.0
) -> bool:
    deadline = time.monotonic() + within
    while not condition(await scrape(client)):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


class TestRequestLatency:
    async def test_labelled_by_route_template_never_the_raw_path(
        self, client: httpx.AsyncClient
    ) -> None:
        _, tokens = await registered_login(client)
        async with Change(client) as change:
            for _ in range(2):  # two different ids, one route
                response = await client.delete(f"/sessions/{uuid.uuid4()}", headers=bearer(tokens))
                assert response.status_code == 404
            assert (await client.get(f"/no/such/{uuid.uuid4()}")).status_code == 404
            assert (await client.request("BREW", "/whoami")).status_code == 405
        route = "/sessions/{session_id}"
        assert change(DURATION_COUNT, method="DELETE", route=route) == 2
        requests = "authapi_http_requests_total"
        assert change(requests, method="DELETE", route=route, status="404") == 2
        assert change(DURATION_COUNT, method="GET", route="unmatched") == 1
        assert change(DURATION_COUNT, method="other", route="/whoami") == 1
        buckets = "authapi_http_request_duration_seconds_bucket"
        assert value(change.after, buckets, method="DELETE", route=route, le="+Inf") >= 2
        routes = {
            dict(labels)["route"]
            for (name, labels) in change.after
            if name.startswith("authapi_http_request")
        }
        uuid_in = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
        assert not any(uuid_in.search(route) for route in routes), routes

    async def test_refusals_before_routing_are_measured(self, client: httpx.AsyncClient) -> None:
        async with Change(client) as change:
            response = await client.post(
                "/users", content=b"x" * 70_000, headers={"content-type": "application/json"}
            )
            assert response.status_code == 413
        requests = "authapi_http_requests_total"
        assert change(requests, method="POST", route="unmatched", status="413") == 1


class TestExposure:
    async def test_served_and_not_in_the_openapi_document(self, client: httpx.AsyncClient) -> None:
        samples = await scrape(client)
        # Every series exists from the start, so that rate() sees the first event.
        assert (LOGINS, (("result", "succeeded"),)) in samples
        assert (REVOCATIONS, (("reason", "user_disabled"),)) in samples
        assert (RATE_LIMITED, (("limit", "login_failures"),)) in samples
        assert ("authapi_refresh_token_reuse_detections_total", ()) in samples
        document = (await client.get("/openapi.json")).json()
        assert "/metrics" not in document["paths"]

    @pytest.mark.parametrize("settings_overrides", [{"metrics_enabled": False}])
    async def test_can_be_turned_off(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/metrics")).status_code == 404

    @pytest.mark.parametrize("settings_overrides", [{"metrics_token": None}])
    @pytest.mark.parametrize("authorization", [None, f"Bearer {METRICS_TOKEN}"])
    async def test_not_served_without_a_token_by_default(
        self, client: httpx.AsyncClient, authorization: str | None
    ) -> None:
        headers = {"Authorization": authorization} if authorization else {}
        refused = await client.get("/metrics", headers=headers)
        assert refused.status_code == 404
        body = refused.json()
        assert body["error"] == "not_found"
        # It says what the operator can set.
        assert "AUTHAPI_METRICS_TOKEN" in body["error_description"]
        assert "AUTHAPI_METRICS_PUBLIC=true" in body["error_description"]
        assert LOGINS not in refused.text

    @pytest.mark.parametrize(
        "settings_overrides", [{"metrics_token": None, "metrics_public": True}]
    )
    async def test_public_only_when_asked_for(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert LOGINS in response.text

    @pytest.mark.parametrize("settings_overrides", [{"metrics_public": True}])
    async def test_a_token_guards_it_even_when_public(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers=bearer(METRICS_TOKEN))).status_code == 200

    @pytest.mark.parametrize("settings_overrides", [{"metrics_token": METRICS_TOKEN}])
    @pytest.mark.parametrize(
        "authorization", [None, "Bearer wrong", "Basic scrape-secret-0123", "Bearer "]
    )
    async def test_a_token_guards_it(
        self, client: httpx.AsyncClient, authorization: str | None
    ) -> None:
        headers = {"Authorization": authorization} if authorization else {}
        refused = await client.get("/metrics", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert set(refused.json()) == {"error", "error_description"}
        allowed = await client.get("/metrics", headers=bearer("scrape-secret-0123"))
        assert allowed.status_code == 200
        assert LOGINS in allowed.text


@pytest.mark.parametrize("token", ["change-me", " "])
def test_production_refuses_a_placeholder_token(token: str) -> None:
    with pytest.raises(ValidationError, match="AUTHAPI_METRICS_TOKEN must be a real token"):
        Settings(
            _env_file=None,
            environment="production",
            key_encryption_key=KEK,
            refresh_token_secret="x7" * 20,
            metrics_token=token,
        )


class TestSeveralWorkers:
    def test_metrics_add_up_every_worker(
        self, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv(metrics_export.MULTIPROC_ENV, raising=False)
        env = {
            "AUTHAPI_HASH_WORKERS": "1",
            "AUTHAPI_HASH_QUEUE": "3",
            "AUTHAPI_ARGON2_MEMORY_COST": "1024",
            "AUTHAPI_ARGON2_TIME_COST": "1",
            "AUTHAPI_RATE_LIMIT_ENABLED": "false",
            "AUTHAPI_METRICS_TOKEN": METRICS_TOKEN,
        }
        database_url = f"sqlite+aiosqlite:///{tmp_path / 'workers.db'}"
        before = set(Path(tempfile.gettempdir()).glob("authapi-metrics-*"))
        with (
            serving(database_url, data_dir, tmp_path, env=env, workers=2) as server,
            httpx.Client(
                base_url=server.base_url, timeout=10.0, headers=bearer(METRICS_TOKEN)
            ) as http,
        ):
            # Each worker adds its capacity (1 + 3) once it has started.
            deadline = time.monotonic() + 30
            capacity = "authapi_password_hashing_queue_capacity"
            while value(parse(http.get("/metrics").text), capacity) < 8:
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.1)
            email = f"workers-{uuid.uuid4().hex}@example.com"
            registered = http.post("/users", json={"email": email, "password": PASSWORD})
            assert registered.status_code == 201
            form = {"grant_type": "password", "username": email, "password": PASSWORD}
            for _ in range(6):
                # A new connection each time, so that both workers take some.
                with httpx.Client(base_url=server.base_url, timeout=10.0) as fresh:
                    assert fresh.post("/token", data=form).status_code == 200
            samples = parse(http.get("/metrics").text)
            assert value(samples, LOGINS, result="succeeded") == 6
            assert value(samples, capacity) == 8
        # The workers' files went with the server.
        assert set(Path(tempfile.gettempdir()).glob("authapi-metrics-*")) <= before

    def test_an_operators_folder_is_emptied_at_the_start(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        stale = tmp_path / "counter_4242.db"
        stale.write_bytes(b"left by the previous run")
        kept = tmp_path / "README"
        kept.write_text("not ours")
        monkeypatch.setenv(metrics_export.MULTIPROC_ENV, str(tmp_path))
        with metrics_export.multiprocess_dir(workers=4):
            assert not stale.exists()
            assert os.environ[metrics_export.MULTIPROC_ENV] == str(tmp_path)
        assert kept.exists()
        assert tmp_path.is_dir()

    def test_one_worker_needs_no_folder(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv(metrics_export.MULTIPROC_ENV, raising=False)
        with metrics_export.multiprocess_dir(workers=1):
            assert metrics_export.MULTIPROC_ENV not in os.environ
