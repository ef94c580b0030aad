"""Logs: the request id (honoured, generated, echoed, in every line of its request),
JSON lines, and no password or token in any log line, in-process and from a real
`authapi serve` at DEBUG."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from authapi import logs
from tests.support.clock import FakeClock
from tests.support.factories import PASSWORD, bearer, login, refresh, register, registered_login
from tests.support.servers import free_port, serving
from tests.support.settings import CHEAP_HASHES

HEX_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {**CHEAP_HASHES}


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What authapi's loggers write, formatted as `authapi serve` does (JSON)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    app_logger = logging.getLogger("authapi")
    previous = app_logger.level
    app_logger.addHandler(handler)
    app_logger.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        app_logger.removeHandler(handler)
        app_logger.setLevel(previous)


def parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


class TestRequestId:
    async def test_generated_when_absent(self, client: httpx.AsyncClient) -> None:
        first = await client.get("/healthz")
        second = await client.get("/healthz")
        assert HEX_ID.fullmatch(first.headers["x-request-id"])
        assert first.headers["x-request-id"] != second.headers["x-request-id"]

    @pytest.mark.parametrize(
        "incoming",
        ["abc-123", "3f2b9c1e-5d7a-4c1b-9e0f-2a6b8c4d1e7f", "Root=1:trace/span+x.y_z", "a" * 128],
    )
    async def test_a_sane_incoming_id_is_honoured(
        self, client: httpx.AsyncClient, incoming: str
    ) -> None:
        response = await client.get("/healthz", headers={"X-Request-ID": incoming})
        assert response.headers["x-request-id"] == incoming

    @pytest.mark.parametrize(
        "incoming",
        [
            "",
            "a" * 129,
            "has space",
            'quote"d',
            "semi;colon",
            "<script>",
            "caf\u00e9",
            "tab\there",
            '{"json": 1}',
        ],
    )
    async def test_a_malformed_incoming_id_is_replaced(
        self, client: httpx.AsyncClient, incoming: str
    ) -> None:
        response = await client.get(
            "/healthz", headers=[(b"X-Request-ID", incoming.encode("latin-1"))]
        )
        assert HEX_ID.fullmatch(response.headers["x-request-id"])

    @pytest.mark.parametrize(
        ("request_args", "status"),
        [
            ({"content": b"x" * 70_000, "headers": {"content-type": "application/json"}}, 413),
            ({"headers": {"x-filler": "x" * 17_000}}, 431),
        ],
    )
    async def test_refusals_before_the_app_get_one_too(
        self, client: httpx.AsyncClient, request_args: dict[str, Any], status: int
    ) -> None:
        response = await client.post("/users", **request_args)
        assert response.status_code == status
        assert HEX_ID.fullmatch(response.headers["x-request-id"])

    @pytest.mark.parametrize(
        "settings_overrides",
        [{**CHEAP_HASHES, "refresh_reuse_grace": 0}],
    )
    async def test_every_line_of_a_request_carries_its_id(
        self, client: httpx.AsyncClient, json_lines: io.StringIO, clock: FakeClock
    ) -> None:
        _, tokens = await registered_login(client)
        await refresh(client, tokens["refresh_token"])
        clock.advance(0.001)
        # A replay after the grace window: the service logs a warning inside the request.
        response = await client.post(
            "/refresh",
            json={"refresh_token": tokens["refresh_token"]},
            headers={"X-Request-ID": "replay-1"},
        )
        lines = [line for line in parsed(json_lines) if line["request_id"] == "replay-1"]
        assert response.status_code == 400
        assert {line["logger"] for line in lines} >= {"authapi.access", "authapi.sessions.rotation"}


class TestAccessLog:
    async def test_one_json_line_per_request_with_its_fields(
        self, client: httpx.AsyncClient, json_lines: io.StringIO
    ) -> None:
        _, tokens = await registered_login(client)
        sid = (await client.get("/whoami", headers=bearer(tokens))).json()["sid"]
        response = await client.delete(
            f"/sessions/{sid}?verbose=1",
            headers={**bearer(tokens), "X-Request-ID": "del-1", "User-Agent": "tests"},
        )
        assert response.status_code == 204
        [line] = [
            line
            for line in parsed(json_lines)
            if line["logger"] == "authapi.access" and line["request_id"] == "del-1"
        ]
        assert line["level"] == "INFO"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["timestamp"])
        assert line["method"] == "DELETE"
        assert line["route"] == "/sessions/{session_id}"
        assert line["path"] == f"/sessions/{sid}"  # without the query string
        assert line["status"] == 204
        assert isinstance(line["duration_ms"], float)
        assert line["duration_ms"] >= 0
        assert line["client_ip"] == "127.0.0.1"
        assert "verbose" not in json.dumps(line)

    async def test_a_path_cannot_forge_a_line(
        self, client: httpx.AsyncClient, json_lines: io.StringIO
    ) -> None:
        await client.get("/nothing%0A%7B%22level%22%3A%22ERROR%22%7D")
        [line] = [line for line in parsed(json_lines) if line["logger"] == "authapi.access"]
        assert line["route"] == "unmatched"
        assert "\n" not in line["path"]

    @pytest.mark.parametrize("settings_overrides", [{"access_log": False}])
    async def test_can_be_turned_off(
        self, client: httpx.AsyncClient, json_lines: io.StringIO
    ) -> None:
        response = await client.get("/healthz")
        assert response.status_code == 200
        assert not [line for line in parsed(json_lines) if line["logger"] == "authapi.access"]


class TestFormatters:
    def record(self, **extra: Any) -> logging.LogRecord:
        logs.install_record_factory()
        logger = logging.getLogger("authapi.test")
        token = logs.request_id.set("req-7")
        try:
            try:
                raise ValueError("boom")
            except ValueError as exc:
                exc_info = (type(exc), exc, exc.__traceback__)
                return logger.makeRecord(
                    logger.name,
                    logging.ERROR,
                    __file__,
                    1,
                    "failed %s",
                    ("here",),
                    exc_info,
                    extra=extra,
                )
        finally:
            logs.request_id.reset(token)

    def test_json_has_the_fields_and_the_traceback(self) -> None:
        entry = json.loads(logs.JsonFormatter().format(self.record(status=200)))
        assert entry["level"] == "ERROR"
        assert entry["logger"] == "authapi.test"
        assert entry["message"] == "failed here"
        assert entry["request_id"] == "req-7"
        assert entry["status"] == 200
        assert "ValueError: boom" in entry["exception"]

    def test_json_timestamps_are_utc_to_the_millisecond(self) -> None:
        # In turn, so that a line in another second than the one before it is seen.
        instants = [0.0, 1_733_338_618.123456, 1_733_338_619.0, 1_733_338_618.9995, 1e9 + 0.5]
        formatter = logs.JsonFormatter()
        for created in instants:
            record = self.record()
            record.created = created
            entry = json.loads(formatter.format(record))
            expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
            assert entry["timestamp"] == expected.replace("+00:00", "Z")

    def test_text_is_one_readable_line_with_the_request_id(self) -> None:
        text = logs.TextFormatter().format(self.record())
        first = text.splitlines()[0]
        assert re.fullmatch(r"\S+ \S+ ERROR authapi\.test \[req-7\]: failed here", first)

    @pytest.mark.parametrize(
        ("log_format", "formatter"), [("json", "JsonFormatter"), ("text", "TextFormatter")]
    )
    def test_the_configuration_holds_libraries_at_warning(
        self, log_format: logs.LogFormat, formatter: str
    ) -> None:
        config = logs.config(log_format, "DEBUG")
        assert config["formatters"]["main"]["()"] == f"authapi.logs.{formatter}"
        assert config["root"]["level"] == "WARNING"  # sqlalchemy.engine would log parameters
        for name in ("authapi", "uvicorn", "uvicorn.error", "uvicorn.access"):
            assert config["loggers"][name]["level"] == "DEBUG"
        assert "sqlalchemy" not in json.dumps(config["loggers"])


def secret_parts(secrets: list[str]) -> set[str]:
    """Every secret and the parts of it that would give it away on their own: a JWT's
    payload and signature, a refresh token without its prefix."""
    parts = set()
    for secret in secrets:
        parts.add(secret)
        if secret.count(".") == 2:  # a JWT: header.payload.signature
            _header, payload, signature = secret.split(".")
            parts.update({payload, signature, signature[:24]})
        if secret.startswith("rt_"):
            body = secret.removeprefix("rt_")
            parts.update({body, body[:24], body[-24:]})
    return parts


def assert_no_secrets(text: str, secrets: list[str]) -> None:
    leaked = sorted(part for part in secret_parts(secrets) if part in text)
    assert not leaked, f"secrets in the logs: {leaked}"
    assert "$argon2" not in text  # nor a password hash


async def whole_flow(
    client: httpx.AsyncClient, *, cookie_mode: bool, clock: FakeClock | None = None
) -> list[str]:
    """Register, log in, use, refresh, replay, change the password, log out, revoke,
    fail a login, send malformed requests; returns every secret used. The refresh
    reuse grace must be 0 (and the app's `clock` is moved past it, when given)."""
    secrets: list[str] = []
    new_password = "a different password 42"
    wrong_password = "wrong password guess 7"
    user = await register(client)
    secrets += [PASSWORD, new_password, wrong_password]

    tokens = await login(client, user["email"])
    secrets += [tokens["access_token"], tokens["refresh_token"]]
    assert (await client.get("/whoami", headers=bearer(tokens))).status_code == 200
    assert (await client.get("/users/me", headers=bearer(tokens))).status_code == 200
    refreshed = await refresh(client, tokens["refresh_token"])
    assert refreshed.status_code == 200
    secrets += [refreshed.json()["access_token"], refreshed.json()["refresh_token"]]
    if clock is not None:
        clock.advance(0.001)
    replay = await refresh(client, tokens["refresh_token"])  # reuse: the session ends
    assert replay.status_code == 400

    current = await login(client, user["email"])
    other = await login(client, user["email"])
    secrets += [current["access_token"], current["refresh_token"]]
    secrets += [other["access_token"], other["refresh_token"]]
    changed = await client.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": new_password},
        headers=bearer(current),
    )
    assert changed.status_code == 204, changed.text
    logout = await client.post("/logout", json={"refresh_token": current["refresh_token"]})
    assert logout.status_code == 204

    again = await login(client, user["email"], new_password)
    secrets += [again["access_token"], again["refresh_token"]]
    assert (await client.post("/revoke", data={"token": again["refresh_token"]})).status_code == 200
    revoked_bearer = await client.get("/users/me", headers=bearer(again))
    assert revoked_bearer.status_code in (200, 401)

    failed = await client.post(
        "/token",
        data={"grant_type": "password", "username": user["email"], "password": wrong_password},
    )
    assert failed.status_code == 400
    # Malformed: a secret in the query string, broken JSON, a tampered token.
    in_query = await client.post("/token?grant_type=password&password=Query-Secret-8812")
    assert in_query.status_code == 400
    secrets.append("Query-Secret-8812")
    broken = await client.post(
        "/users",
        content=f'{{"email": "{user["email"]}", "password": "{new_password}"'.encode(),
        headers={"content-type": "application/json"},
    )
    assert broken.status_code == 422
    header, payload, signature = again["access_token"].split(".")
    tampered = await client.get("/whoami", headers=bearer(f"{header}.{payload}.{signature[::-1]}"))
    assert tampered.status_code == 401

    if cookie_mode:
        mode = {"X-Token-Delivery": "cookie", "Origin": str(client.base_url).rstrip("/")}
        form = {"grant_type": "password", "username": user["email"], "password": new_password}
        browser = await client.post("/token", data=form, headers=mode)
        assert browser.status_code == 200, browser.text
        # (`__Host-authapi-refresh`, or without the prefix when the cookie is not Secure;
        # the other cookie is the login throttle's device cookie)
        [(name, cookie)] = [item for item in browser.cookies.items() if "refresh" in item[0]]
        secrets += [value for key, value in browser.cookies.items() if "device" in key]
        rotated = await client.post("/refresh", headers={**mode, "Cookie": f"{name}={cookie}"})
        assert rotated.status_code == 200, rotated.text
        assert rotated.cookies[name] != cookie
        secrets += [browser.json()["access_token"], cookie, rotated.json()["access_token"]]
        secrets.append(rotated.cookies[name])
    return secrets


class TestNoSecretsInLogs:
    @pytest.mark.parametrize(
        "settings_overrides",
        [{**CHEAP_HASHES, "refresh_reuse_grace": 0}],
    )
    async def test_in_process_at_debug(
        self, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, clock: FakeClock
    ) -> None:
        for name in logs.APP_LOGGERS:  # what AUTHAPI_LOG_LEVEL=DEBUG turns on
            caplog.set_level(logging.DEBUG, logger=name)
        secrets = await whole_flow(client, cookie_mode=False, clock=clock)

        formatter = logs.JsonFormatter()
        text = "\n".join(formatter.format(record) for record in caplog.records)
        assert any(record.name == "authapi.access" for record in caplog.records)
        assert_no_secrets(text, secrets)
        # And the request ids were there: every access line has one.
        access = [r for r in caplog.records if r.name == "authapi.access"]
        assert all(HEX_ID.fullmatch(str(getattr(r, "request_id", ""))) for r in access)

    def test_a_real_server_at_debug(
        self, database_url: str, data_dir: Path, tmp_path: Path
    ) -> None:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {
            "AUTHAPI_LOG_LEVEL": "DEBUG",
            "AUTHAPI_REFRESH_REUSE_GRACE": "0",
            "AUTHAPI_RATE_LIMIT_ENABLED": "false",
            "AUTHAPI_ISSUER": url,
            "AUTHAPI_COOKIE_SECURE": "false",  # browser mode over plain http
            "AUTHAPI_ARGON2_MEMORY_COST": "1024",
            "AUTHAPI_ARGON2_TIME_COST": "1",
        }
        with serving(database_url, data_dir, tmp_path, port=port, env=env) as server:

            async def flow() -> list[str]:
                async with httpx.AsyncClient(base_url=url, timeout=10.0) as http:
                    return await whole_flow(http, cookie_mode=True)

            secrets = asyncio.run(flow())
        output = server.log()

        assert_no_secrets(output, secrets)
        lines = [json.loads(line) for line in output.splitlines() if line.strip()]
        assert {"uvicorn.error", "authapi.access"} <= {line["logger"] for line in lines}
        statuses = {line["status"] for line in lines if line["logger"] == "authapi.access"}
        assert {200, 201, 204, 400, 401, 422} <= statuses
        for line in lines:
            assert {"timestamp", "level", "logger", "message", "request_id"} <= set(line)
