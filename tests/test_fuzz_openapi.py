"""Fuzz every operation of the app's own OpenAPI document with schemathesis, on both
databases, with all of its checks: no input may yield a 5xx, and every answer must be
one the document promises (status code, content type, headers, body schema).

The app is the `app` fixture, lifespan and database pool included, and every request
schemathesis makes, including the ones its checks send again, reaches it in-process
through httpx's ASGI transport on the test's event loop. Not through
`schemathesis.openapi.from_asgi`: that starts the app's lifespan a second time on an
event loop thread of its own, so the app would answer from a second context (a second
database pool) that the fixture neither cleans nor closes.

Authenticated operations are sent twice per example: as generated (anonymous, or with
whatever Authorization header schemathesis made up) and with a valid bearer token of an
admin registered for the test, so the fuzzing reaches past the 401 and the 403.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from datetime import timedelta, timezone
from typing import Any

import httpx
import pytest
import requests
import requests.adapters
import schemathesis
import schemathesis.pytest
import urllib3
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.schemas import BaseSchema

from authapi.context import AppContext
from tests.support.factories import PASSWORD, bearer, register, update_user
from tests.support.settings import CHEAP_HASHES

BASE_URL = "http://testserver"
# Examples per operation and generation phase; each operation also gets schemathesis'
# coverage cases (boundary values, missing and malformed parameters) on top.
MAX_EXAMPLES = 30
# Fixed, so that CI sends the same requests every run (a failure reproduces locally).
SEED = 20240601


# Scenarios of the stateful phase, and calls in each.
STATEFUL_SCENARIOS = 40
STATEFUL_STEPS = 6


CONFIG: dict[str, Any] = {
    "seed": SEED,
    "base-url": BASE_URL,
    # All checks and all phases are on by default; said here so that they stay so.
    "checks": {"enabled": True},
    "phases": {
        "examples": {"enabled": True},
        "coverage": {"enabled": True},
        "fuzzing": {"enabled": True},
        "stateful": {"enabled": True},
    },
    "operations": [
        {
            # These operations check a credential in the body: a refresh token, the
            # current password, a mailed link's token. A schema-valid one that the fuzzer
            # made up is still wrong, and the answer to that is a 400 (RFC 6749 §5.2
            # invalid_grant; invalid_token) or a 403 (invalid_credentials), like the one
            # schemathesis already lets the tokenUrl (/token) give. Any other refusal of
            # valid data still fails the check. (/refresh without a body reads the
            # refresh cookie: "the body or the cookie" is a rule OpenAPI cannot state,
            # and its absence is a 400 as well.)
            "include-name": [
                "POST /refresh",
                "POST /users/me/password",
                "POST /email/verify",
                "POST /password/reset",
                "POST /users/me/email",
                "DELETE /users/me",
                # A passkey's credential that the fuzzer made up never verifies; nor
                # does its mfa_token.
                "POST /users/me/passkeys",
                "DELETE /users/me/passkeys/{passkey_id}",
                "POST /passkeys/options",
            ],
            "checks": {
                "positive_data_acceptance": {
                    # schemathesis' default list and 400 (its 5xx left out: a failure anyway)
                    "expected-statuses": ["2xx", "3xx", "400", "401", "403", "404", "409", "429"],
                }
            },
        }
    ],
}


# Instants as RFC 3339 writes them, the ones a datetime can barely hold (or not at all,
# once converted to UTC) included, for every `format: date-time` parameter.
EXTREME_INSTANTS = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59-23:59",
    "1970-01-01T00:00:00-00:00",
]
# RFC 3339 offsets are whole minutes, up to a day less one minute either way.
UTC_OFFSETS = st.integers(-1439, 1439).map(lambda minutes: timezone(timedelta(minutes=minutes)))
schemathesis.openapi.format(
    "date-time",
    st.one_of(
        st.sampled_from(EXTREME_INSTANTS),
        st.datetimes(timezones=UTC_OFFSETS).map(lambda instant: instant.isoformat()),
    ),
)


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {
        # The fuzzer sends far more requests per second than any limit allows.
        "rate_limit_enabled": False,
        # Cheap hashes: every valid registration and login hashes a password.
        **CHEAP_HASHES,
    }


class _AppAdapter(requests.adapters.HTTPAdapter):
    """A `requests` adapter (what schemathesis sends with) that hands each request to
    the app through httpx's ASGI transport, on the loop the app fixture started it on."""

    def __init__(self, app: FastAPI, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = httpx.ASGITransport(app=app)
        self._loop = loop

    async def _send(self, request: httpx.Request) -> httpx.Response:
        response = await self._transport.handle_async_request(request)
        await response.aread()
        return response

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        body = request.body
        content = body.encode() if isinstance(body, str) else (body or b"")
        assert isinstance(content, bytes), type(content)  # no streamed bodies here
        headers = [
            (name, value if isinstance(value, str) else value.decode("latin-1"))
            for name, value in request.headers.items()
        ]
        outgoing = httpx.Request(
            str(request.method), str(request.url), headers=headers, content=content
        )
        response = self._loop.run_until_complete(self._send(outgoing))
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(response.content),
            headers=urllib3.HTTPHeaderDict(response.headers.multi_items()),
            status=response.status_code,
            reason=response.reason_phrase,
            version=11,
            preload_content=False,
            decode_content=False,
            request_method=str(request.method),
        )
        return self.build_response(request, raw)


@pytest.fixture
async def event_loop_of_app() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


@pytest.fixture
def session(
    app: FastAPI, event_loop_of_app: asyncio.AbstractEventLoop
) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.mount(BASE_URL, _AppAdapter(app, event_loop_of_app))
        yield session


@pytest.fixture
async def api_schema(request: pytest.FixtureRequest, client: httpx.AsyncClient) -> BaseSchema:
    # schemathesis 4.32 names its per-operation subtests through `Node._nodeid`, which
    # pytest 9.2 no longer has (it keeps `_id`); give it the attribute it reads.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    config = SchemathesisConfig.from_dict(CONFIG)
    return schemathesis.openapi.from_dict(response.json(), config=config)


@pytest.fixture
async def admin_email(client: httpx.AsyncClient, context: AppContext) -> str:
    """An admin, whom every operation admits: so the admin ones are explored past the 403."""
    user = await register(client)
    await update_user(context, user, role="admin")
    return str(user["email"])


def fresh_bearer(session: requests.Session, email: str) -> dict[str, str]:
    """A token of a new session: the fuzzer may have logged the previous ones out."""
    response = session.post(
        f"{BASE_URL}/token",
        data={"grant_type": "password", "username": email, "password": PASSWORD},
    )
    assert response.status_code == 200, response.text
    return bearer(response.json())


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api_conforms_to_its_openapi_document(
    case: schemathesis.Case[Any], session: requests.Session, admin_email: str
) -> None:
    case.call_and_validate(session=session, base_url=BASE_URL)
    if case.operation.definition.raw.get("security"):
        headers = fresh_bearer(session, admin_email)
        case.call_and_validate(session=session, base_url=BASE_URL, headers=headers)


async def test_every_error_is_documented_with_the_error_body(client: httpx.AsyncClient) -> None:
    """What the fuzzer cannot provoke: a database outage (503), and the shape of every
    error the document lists."""
    document = (await client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    error_body = {"$ref": "#/components/schemas/ErrorBody"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if int(status) >= 400:
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == error_body, (method, path, status)
    paths = document["paths"]
    # Token endpoints answer malformed input with RFC 6749's 400, never a 422.
    assert "422" not in paths["/token"]["post"]["responses"]
    assert "503" in paths["/sessions"]["delete"]["responses"]
    assert "503" not in paths["/whoami"]["get"]["responses"]  # never touches the database


def test_stateful_sequences_conform(
    api_schema: BaseSchema, session: requests.Session, admin_email: str
) -> None:
    """The stateful phase: chains of calls along the document's links (a user that was
    just registered is then changed, a session just listed is then deleted, ...), as an
    admin, with every check."""
    failures: list[str] = []
    scenarios = 0

    class Scenario(api_schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            nonlocal scenarios
            scenarios += 1
            self.headers = fresh_bearer(session, admin_email)

        def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:
            return {"session": session, "base_url": BASE_URL, "headers": self.headers}

        def validate_response(
            self, response: Any, case: schemathesis.Case[Any], *args: Any, **kwargs: Any
        ) -> None:
            # Collected, not raised: the app's state moves on between scenarios, so
            # Hypothesis could not replay a failing one; hence the request and the answer
            # in each failure's text (this phase is not seeded).
            try:
                super().validate_response(response, case, *args, **kwargs)
            except FailureGroup as group:
                sent = f"{case.operation.label}: {case.as_curl_command()}"
                answer = f"{response.status_code} {response.text[:500]}"
                failures.extend(f"{failure}\n{sent}\n-> {answer}" for failure in group.exceptions)

    # As schemathesis' own runner does: when Hypothesis notices that a scenario drew
    # differently from an earlier one with the same start (the app's state moved on,
    # as it does here by design), it stops the run; another run goes on from there.
    for _ in range(10):
        try:
            Scenario.run(
                settings=settings(
                    max_examples=STATEFUL_SCENARIOS - scenarios,
                    stateful_step_count=STATEFUL_STEPS,
                    phases=[Phase.generate],
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                )
            )
        except Flaky:
            pass
        if scenarios >= STATEFUL_SCENARIOS:
            break
    assert not failures, "\n\n".join(dict.fromkeys(failures))
    assert scenarios >= STATEFUL_SCENARIOS
