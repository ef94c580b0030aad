"""Requests that would hash while the hasher is full are refused before FastAPI parses
them; everything else gets through, and nothing changes while the hasher has room."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from authapi.context import AppContext
from authapi.hashing_admission import HashingAdmission
from authapi.logs import ACCESS_LOGGER
from authapi.middleware import MAX_BODY_BYTES
from tests.support.factories import (
    PASSWORD,
    hashing_blocked,
    new_email,
    password_form,
    refresh,
    registered_login,
    user_count,
)
from tests.support.loop_turns import counting_turns
from tests.support.metrics import METRICS_TOKEN, Change

BUSY = {
    "error": "temporarily_unavailable",
    "error_description": "Too many logins at once; try again shortly.",
}
HTTP_REQUESTS = "authapi_http_requests_total"

# Forms the app refuses with 400 once it parses them (missing, too long, repeated,
# too many fields).
INVALID_PASSWORD_GRANTS = [
    "grant_type=password",
    f"grant_type=password&username=a%40example.com&password={'x' * 2000}",
    "grant_type=password&username=a%40example.com&username=b%40example.com&password=p",
    "grant_type=pass%77ord&username=a%40example.com",  # percent-escaped "password"
    "username=a%40example.com&password=p&" + "x=1&" * 2000 + "grant_type=password",
]
FORM = {"content-type": "application/x-www-form-urlencoded"}
ORIGIN = "https://app.example"
CORS = {"Origin": ORIGIN}
REQUEST_ID = "X-Request-ID"
BURST = 64  # refusals at once, several turns of the event loop's worth


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    # One hashing place: one login waiting for the blocked thread fills it.
    return {"hash_workers": 1, "hash_queue": 0, "metrics_token": METRICS_TOKEN}


@asynccontextmanager
async def hasher_full(client: httpx.AsyncClient, context: AppContext) -> AsyncIterator[None]:
    """Every hashing place taken by a real login, waiting for the blocked thread."""
    user, _ = await registered_login(client)
    form = password_form(user["email"])
    waiting: asyncio.Task[httpx.Response] | None = None
    try:
        with hashing_blocked(context):
            waiting = asyncio.create_task(client.post("/token", data=form))
            for _ in range(100_000):
                if context.hasher.full:
                    break
                await asyncio.sleep(0)
            assert context.hasher.full
            yield
    finally:
        # Awaited even when the test failed, so that no request outlives the app.
        if waiting is not None:
            assert (await waiting).status_code == 200  # it logs in once the thread is free


def password_form_body() -> bytes:
    return urlencode(password_form(new_email())).encode()


def assert_busy(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json() == BUSY
    assert response.headers["retry-after"] == "1"
    assert response.headers["cache-control"] == "no-store"


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    """A body sent in several messages, without a Content-Length."""
    for part in parts:
        yield part


class TestWhileFull:
    async def test_a_password_grant_gets_the_503_of_the_hasher(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        async with hasher_full(client, context):
            response = await client.post("/token", data=password_form(new_email()))
        assert_busy(response)

    @pytest.mark.parametrize("form", INVALID_PASSWORD_GRANTS)
    async def test_the_form_is_never_parsed(
        self, client: httpx.AsyncClient, context: AppContext, form: str
    ) -> None:
        # Parsed, each of these would be a 400: a 503 shows the app never saw it.
        async with hasher_full(client, context):
            response = await client.post("/token", content=form, headers=FORM)
        assert_busy(response)

    async def test_each_refusal_is_counted_under_its_route(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        async with hasher_full(client, context), Change(client) as change:
            for _ in range(3):
                assert_busy(
                    await client.post("/token", content="grant_type=password", headers=FORM)
                )
        assert change(HTTP_REQUESTS, method="POST", route="/token", status="503") == 3

    async def test_each_refusal_has_its_access_log_line(
        self, client: httpx.AsyncClient, context: AppContext, caplog: pytest.LogCaptureFixture
    ) -> None:
        async with hasher_full(client, context):
            with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
                for number in range(2):
                    response = await client.post(
                        "/token",
                        data=password_form(new_email()),
                        headers={REQUEST_ID: f"r{number}"},
                    )
                    assert_busy(response)
        lines = [record for record in caplog.records if record.name == ACCESS_LOGGER]
        assert [record.getMessage() for record in lines] == ["POST /token 503"] * 2
        assert [record.request_id for record in lines] == ["r0", "r1"]  # type: ignore[attr-defined]
        for record in lines:
            assert (record.method, record.route, record.status) == (  # type: ignore[attr-defined]
                "POST",
                "/token",
                503,
            )
            assert record.client_ip == "127.0.0.1"  # type: ignore[attr-defined]
            assert record.duration_ms >= 0  # type: ignore[attr-defined]

    @pytest.mark.parametrize("sent_in_chunks", [False, True])
    async def test_a_refresh_grant_on_token_gets_through(
        self, client: httpx.AsyncClient, context: AppContext, sent_in_chunks: bool
    ) -> None:
        _, tokens = await registered_login(client)
        form = f"grant_type=refresh_token&refresh_token={tokens['refresh_token']}".encode()
        async with hasher_full(client, context):
            # What was read to find the grant type reaches the app all the same.
            body = chunks(form[:10], form[10:40], form[40:]) if sent_in_chunks else form
            response = await client.post("/token", content=body, headers=FORM)
        assert response.status_code == 200, response.text
        assert response.json()["refresh_token"] != tokens["refresh_token"]

    async def test_refresh_gets_through(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        _, tokens = await registered_login(client)
        async with hasher_full(client, context):
            response = await refresh(client, tokens["refresh_token"])
        assert response.status_code == 200, response.text

    @pytest.mark.parametrize(
        ("form", "error"),
        [
            ("grant_type=client_credentials", "unsupported_grant_type"),
            ("username=a%40example.com&password=p", "invalid_request"),
            ("grant_type=password&grant_type=password", "invalid_request"),
        ],
    )
    async def test_other_token_requests_get_the_apps_answer(
        self, client: httpx.AsyncClient, context: AppContext, form: str, error: str
    ) -> None:
        async with hasher_full(client, context):
            response = await client.post("/token", content=form, headers=FORM)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == error

    async def test_an_oversized_body_is_still_refused_as_too_large(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        padding = b"x" * (MAX_BODY_BYTES // 2)
        async with hasher_full(client, context):
            response = await client.post(
                "/token",
                content=chunks(b"grant_type=password&pad=", padding, padding, padding),
                headers=FORM,
            )
        assert response.status_code == 413, response.text
        assert response.json()["error"] == "request_too_large"

    @pytest.mark.parametrize(
        "body",
        [
            {"email": "not an address", "password": "short"},  # parsed: 422
            {"email": "new@example.com", "password": PASSWORD},
        ],
    )
    async def test_registration_is_refused_and_creates_nobody(
        self, client: httpx.AsyncClient, context: AppContext, body: dict[str, Any]
    ) -> None:
        async with hasher_full(client, context):
            before = await user_count(context)
            response = await client.post("/users", json=body)
            assert await user_count(context) == before
        assert_busy(response)


class TestRefusalsWithCors:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"hash_workers": 1, "hash_queue": 0, "cors_origins": [ORIGIN]}

    async def test_each_refusal_carries_each_header_once(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        # The refusal is rendered once and sent three times: each answer has the CORS
        # and security headers of the layers above it, and no more of any than the first.
        async with hasher_full(client, context):
            answers = [
                await client.post("/token", data=password_form(new_email()), headers=CORS)
                for _ in range(3)
            ]
        for response in answers:
            assert_busy(response)
            assert response.headers.get_list("access-control-allow-origin") == [ORIGIN]
            assert response.headers.get_list("access-control-allow-credentials") == ["true"]
            assert response.headers.get_list("vary") == ["Origin"]
            assert response.headers.get_list("retry-after") == ["1"]
            assert response.headers.get_list("cache-control") == ["no-store"]
            assert response.headers.get_list("x-content-type-options") == ["nosniff"]
            assert len(response.headers.get_list("x-request-id")) == 1
            assert response.headers["content-type"] == "application/json"
            assert response.headers["content-length"] == str(len(response.content))
        assert len({response.headers["x-request-id"] for response in answers}) == 3


class TestRateLimits:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"hash_workers": 1, "hash_queue": 0, "rate_limit_token": "3/minute"}

    async def test_a_refused_login_uses_up_no_attempt(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        # No password was checked: the address keeps its budget for real attempts.
        async with hasher_full(client, context):  # two of the three logins
            for _ in range(3):
                assert_busy(await client.post("/token", data=password_form(new_email())))
        user, _ = await registered_login(client)  # the third
        response = await client.post("/token", data=password_form(user["email"]))
        assert response.status_code == 429, response.text


class TestWithRoom:
    @pytest.mark.parametrize("form", INVALID_PASSWORD_GRANTS)
    async def test_the_app_answers_as_before(self, client: httpx.AsyncClient, form: str) -> None:
        response = await client.post("/token", content=form, headers=FORM)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_request"

    async def test_registration_and_login_work(self, client: httpx.AsyncClient) -> None:
        await registered_login(client)


class TestBurstOfRefusals:
    async def test_a_request_that_comes_with_them_does_not_wait_for_them_all(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        finished: list[str] = []

        async def refused(number: int) -> None:
            assert_busy(await client.post("/token", data=password_form(new_email())))
            finished.append(f"refusal {number}")

        async def health() -> None:
            assert (await client.get("/healthz")).status_code == 200
            finished.append("healthz")

        async with hasher_full(client, context):
            burst = [asyncio.create_task(refused(number)) for number in range(BURST)]
            await asyncio.gather(*burst, asyncio.create_task(health()))
        # All answered, in the order they came; /healthz, sent last, not after them all.
        refusals = [name for name in finished if name != "healthz"]
        assert refusals == [f"refusal {number}" for number in range(BURST)]
        assert finished.index("healthz") < BURST // 2, finished


class _Hasher:
    """What HashingAdmission reads of the app's hasher: whether it is full."""

    def __init__(self) -> None:
        self.full = False


def _scope(hasher: _Hasher, path: str, body_type: str = FORM["content-type"]) -> dict[str, Any]:
    app = SimpleNamespace(state=SimpleNamespace(context=SimpleNamespace(hasher=hasher)))
    headers = [(b"content-type", body_type.encode())]
    return {"type": "http", "method": "POST", "path": path, "headers": headers, "app": app}


async def _through(admission: HashingAdmission, scope: Scope, body: bytes) -> list[Message]:
    """One request through the middleware alone; what it sent (nothing: let in)."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await admission(scope, receive, send)
    return sent


class TestOnePerTurn:
    """Requests that hash are let in one per turn of the event loop: each costs the loop
    ~2 ms before it hashes, and a flood's first ones all find room."""

    async def test_logins_and_registrations_that_come_at_once_go_in_one_per_turn(self) -> None:
        hasher = _Hasher()
        entered: list[tuple[int, int]] = []  # (number, turn)
        with counting_turns() as counter:

            async def app(scope: Scope, receive: Receive, send: Send) -> None:
                entered.append((scope["number"], counter.turn))

            admission = HashingAdmission(app)
            requests = [
                (_scope(hasher, "/token"), password_form_body())
                if number % 2
                else (_scope(hasher, "/users", "application/json"), b"{}")
                for number in range(6)
            ]
            for number, (scope, _) in enumerate(requests):
                scope["number"] = number
            await asyncio.gather(*(_through(admission, *request) for request in requests))

        assert [number for number, _ in entered] == list(range(6))  # in the order they came
        turns = [turn for _, turn in entered]
        assert len(set(turns)) == 6, turns

    async def test_those_waiting_when_the_hasher_fills_are_refused_without_their_turns(
        self,
    ) -> None:
        hasher = _Hasher()
        entered: list[int] = []
        with counting_turns() as counter:

            async def app(scope: Scope, receive: Receive, send: Send) -> None:
                entered.append(scope["number"])
                hasher.full = True  # the first one let in fills it

            admission = HashingAdmission(app)
            scopes = [_scope(hasher, "/token") for _ in range(6)]
            for number, scope in enumerate(scopes):
                scope["number"] = number
            start = counter.turn
            answers = await asyncio.gather(
                *(_through(admission, scope, password_form_body()) for scope in scopes)
            )
            turns_taken = counter.turn - start

        assert entered == [0]
        assert [answer[0]["status"] for answer in answers[1:]] == [503] * 5
        assert turns_taken <= 3  # refused together, not one a turn

    @pytest.mark.parametrize(
        ("path", "body"),
        [
            ("/token", b"grant_type=refresh_token&refresh_token=x"),
            ("/token", b"grant_type=client_credentials"),
            ("/refresh", b"refresh_token=x"),
        ],
    )
    async def test_other_requests_are_not_paced(self, path: str, body: bytes) -> None:
        entered: list[int] = []
        with counting_turns() as counter:

            async def app(scope: Scope, receive: Receive, send: Send) -> None:
                entered.append(counter.turn)

            admission = HashingAdmission(app)
            await asyncio.gather(
                *(_through(admission, _scope(_Hasher(), path), body) for _ in range(6))
            )

        assert len(entered) == 6
        assert len(set(entered)) == 1, entered  # all in one turn
