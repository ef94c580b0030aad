"""Malformed and hostile input: always a 4xx JSON body, never a 5xx, nothing changed."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Awaitable, Callable

import httpx
import pytest
from sqlalchemy import func, select

from authapi import errors
from authapi.app import create_app
from authapi.context import AppContext
from authapi.errors import DomainError
from authapi.sessions.models import LoginSession
from authapi.users.models import User
from tests.support.factories import bearer, login, registered_login

HOSTILE_STRINGS = [
    "' OR '1'='1",
    "'; DROP TABLE users; --",
    "\x00",
    "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
    "%00%ff",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "a" * 10_000,
]

ENDPOINTS = [
    ("POST", "/users"),
    ("POST", "/token"),
    ("POST", "/refresh"),
    ("POST", "/logout"),
    ("POST", "/revoke"),
    ("POST", "/users/me/password"),
    ("POST", "/email/verify"),
    ("POST", "/password/forgot"),
    ("POST", "/password/reset"),
    ("POST", "/users/me/email"),
    ("DELETE", "/users/me"),
    ("GET", "/users/me"),
    ("GET", "/whoami"),
    ("GET", "/sessions"),
    ("DELETE", "/sessions"),
    ("DELETE", "/sessions/x"),
]

# Requests that take no body answer as if none was sent; every raw body sent to an
# endpoint that reads one is a 4xx (a JSON `null` too: leave the body out instead).
BODY_IGNORED = {
    ("GET", "/users/me"): 200,
    ("GET", "/whoami"): 200,
    ("GET", "/sessions"): 200,
    ("DELETE", "/sessions"): 204,
}


RAW_BODIES = [
    ("application/json", b"{"),
    ("application/json", b"null"),
    ("application/json", b'{"refresh_token": null, "email": [], "password": {}}'),
    ("application/json", b"\xff\xfe\x00"),
    ("application/x-www-form-urlencoded", b"grant_type=%ZZ&&&=="),
    ("application/x-www-form-urlencoded", b"\xff\xfe=\xff"),
    ("multipart/form-data; boundary=x", b"--x\r\nbroken"),
    ("text/plain", b"hello"),
]


async def counts(context: AppContext) -> tuple[int, int]:
    async with context.sessionmaker() as db:
        users = await db.scalar(select(func.count()).select_from(User))
        sessions = await db.scalar(select(func.count()).select_from(LoginSession))
    return int(users or 0), int(sessions or 0)


def assert_client_error(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error", "error_description"}


class TestHostileInput:
    @pytest.mark.parametrize(("method", "path"), ENDPOINTS)
    async def test_raw_bodies(
        self, client: httpx.AsyncClient, context: AppContext, method: str, path: str
    ) -> None:
        user, _ = await registered_login(client)
        for content_type, raw in RAW_BODIES:
            # A session of its own per body: a body that is ignored may end it.
            tokens = await login(client, user["email"])
            before = await counts(context)
            response = await client.request(
                method, path, content=raw, headers={"Content-Type": content_type, **bearer(tokens)}
            )
            success = BODY_IGNORED.get((method, path))
            if success is not None:
                assert response.status_code == success, (raw, response.status_code, response.text)
            else:
                assert_client_error(response)
            assert await counts(context) == before, raw

    @pytest.mark.parametrize("value", HOSTILE_STRINGS)
    async def test_strings_in_every_field(
        self, client: httpx.AsyncClient, context: AppContext, value: str
    ) -> None:
        _, tokens = await registered_login(client)
        before = await counts(context)
        quoted = urllib.parse.quote(value[:200], safe="")
        attempts: list[Callable[[], Awaitable[httpx.Response]]] = [
            lambda: client.post("/users", json={"email": value, "password": value}),
            lambda: client.post(
                "/token",
                data={
                    "grant_type": "password",
                    "username": value,
                    "password": value,
                    "scope": value,
                },
            ),
            lambda: client.post("/token", data={"grant_type": value}),
            lambda: client.post(
                "/token", data={"grant_type": "refresh_token", "refresh_token": value}
            ),
            lambda: client.post("/refresh", json={"refresh_token": value}),
            lambda: client.post("/revoke", data={"token": value, "token_type_hint": value}),
            lambda: client.post("/logout", json={"refresh_token": value}),
            lambda: client.get("/whoami", headers=bearer(quoted)),
            lambda: client.delete(f"/sessions/{quoted}", headers=bearer(tokens)),
            lambda: client.post(
                "/users/me/password",
                json={"current_password": value, "new_password": value},
                headers=bearer(tokens),
            ),
            lambda: client.post("/email/verify", json={"token": value}),
            lambda: client.post("/password/forgot", json={"email": value}),
            lambda: client.post("/password/reset", json={"token": value, "new_password": value}),
            lambda: client.post(
                "/users/me/email",
                json={"new_email": value, "current_password": value},
                headers=bearer(tokens),
            ),
            lambda: client.post(
                "/users/me/email",
                json={"new_email": "someone@example.com", "current_password": value},
                headers=bearer(tokens),
            ),
            lambda: client.request(
                "DELETE", "/users/me", json={"current_password": value}, headers=bearer(tokens)
            ),
        ]
        for attempt in attempts:
            response = await attempt()
            assert response.status_code < 500, response.text
            if response.status_code >= 400:
                assert_client_error(response)
        # /revoke and /logout answer 2xx for unknown tokens; nothing else may succeed.
        assert await counts(context) == before
        assert (await client.get("/whoami", headers=bearer(tokens))).status_code == 200

    async def test_unknown_path_and_method(self, client: httpx.AsyncClient) -> None:
        assert_client_error(await client.get("/nope"))
        response = await client.put("/token")
        assert response.status_code == 405
        assert_client_error(response)

    async def test_security_headers_everywhere(self, client: httpx.AsyncClient) -> None:
        for response in (await client.get("/healthz"), await client.get("/nope")):
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "no-referrer"


def _subclasses(cls: type[DomainError]) -> list[type[DomainError]]:
    return [cls, *(sub for child in cls.__subclasses__() for sub in _subclasses(child))]


class TestTheHierarchyInTheDocstring:
    def test_names_every_domain_error_under_its_parent(self) -> None:
        """errors.py opens with the tree of the domain errors, each with its status and
        code: every one the app can raise is there, under the class it derives from."""
        assert callable(create_app)  # imported: every router, and so every domain error
        tree = re.findall(r"^([ |]*)[*+] (\w+).*? (\d{3}) (\w+)", errors.__doc__ or "", re.M)
        parents: dict[str, str | None] = {}
        documented: dict[str, tuple[int, str]] = {}
        path: list[tuple[int, str]] = []  # (indent, name) from the root down
        for indent, name, status, code in tree:
            while path and path[-1][0] >= len(indent):
                path.pop()
            parents[name] = path[-1][1] if path else None
            documented[name] = (int(status), code)
            path.append((len(indent), name))
        for error in _subclasses(DomainError):
            if not error.__module__.startswith("authapi."):
                continue  # one a test made up
            name = error.__name__
            assert documented.get(name) == (error.status_code, error.error), name
            base = next((b for b in error.__bases__ if issubclass(b, DomainError)), None)
            assert parents[name] == (base.__name__ if base else None), name
