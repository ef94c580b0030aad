"""Input built to break the database layer gets a 4xx, on both databases, and changes
nothing: control characters in text, overlong forwarded addresses, out-of-range
numbers and instants."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from authapi.audit.models import AuditEvent
from authapi.context import AppContext
from authapi.users.models import User
from tests.support.factories import (
    PASSWORD,
    bearer,
    login,
    new_email,
    register,
    registered_login,
    update_user,
)
from tests.support.settings import CHEAP_HASHES

# NUL (which PostgreSQL cannot store), other C0 controls, DEL and C1 controls.
URL_CONTROLS = ["\x00", "\n", "\x7f", "\x85"]
# And a lone surrogate (no UTF-8 at all), which only JSON can carry: in a URL or a form
# its bytes are no UTF-8, and are read as U+FFFD.
CONTROLS = [*URL_CONTROLS, "\ud800"]


def ids(characters: list[str]) -> list[str]:
    return [f"U+{ord(c):04X}" for c in characters]


def post_json(
    client: httpx.AsyncClient, path: str, body: Any, headers: dict[str, str] | None = None
) -> Any:
    # json.dumps escapes a lone surrogate ("\ud800"), which httpx's encoder cannot send.
    content = json.dumps(body).encode()
    return client.post(
        path, content=content, headers={"Content-Type": "application/json", **(headers or {})}
    )


def assert_refused(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == "invalid_request"


async def count(context: AppContext, model: type[User] | type[AuditEvent]) -> int:
    async with context.sessionmaker() as db:
        return int(await db.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {
        "rate_limit_enabled": False,
        **CHEAP_HASHES,
        # The test client's peer, so that X-Forwarded-For is believed.
        "trusted_proxies": ["127.0.0.1"],
    }


@pytest.mark.parametrize("control", URL_CONTROLS, ids=ids(URL_CONTROLS))
class TestControlCharactersInForms:
    async def test_in_the_username_of_the_password_grant(
        self, client: httpx.AsyncClient, control: str
    ) -> None:
        user = await register(client)
        username = user["email"].replace("@", f"{control}@")
        form = {"grant_type": "password", "username": username, "password": PASSWORD}
        assert_refused(await client.post("/token", data=form), 400)

    @pytest.mark.parametrize("field", ["password", "scope"])
    async def test_in_other_fields_of_the_password_grant(
        self, client: httpx.AsyncClient, control: str, field: str
    ) -> None:
        user = await register(client)
        form = {"grant_type": "password", "username": user["email"], "password": PASSWORD}
        form[field] = form.get(field, "profile") + control
        assert_refused(await client.post("/token", data=form), 400)

    @pytest.mark.parametrize("field", ["token", "token_type_hint"])
    async def test_in_a_revocation(
        self, client: httpx.AsyncClient, control: str, field: str
    ) -> None:
        _, tokens = await registered_login(client)
        form = {"token": tokens["refresh_token"], "token_type_hint": "refresh_token"}
        form[field] += control
        assert_refused(await client.post("/revoke", data=form), 400)
        response = await post_json(client, "/refresh", {"refresh_token": tokens["refresh_token"]})
        assert response.status_code == 200, response.text  # not revoked

    @pytest.mark.parametrize("parameter", ["email", "after"])
    async def test_in_a_query_parameter(
        self, client: httpx.AsyncClient, context: AppContext, control: str, parameter: str
    ) -> None:
        admin = await admin_headers(client, context)
        response = await client.get(
            "/admin/users", params={parameter: f"a{control}"}, headers=admin
        )
        assert_refused(response, 422)


@pytest.mark.parametrize("control", CONTROLS, ids=ids(CONTROLS))
class TestControlCharactersInJson:
    @pytest.mark.parametrize("field", ["email", "password"])
    async def test_in_a_registration(
        self, client: httpx.AsyncClient, context: AppContext, control: str, field: str
    ) -> None:
        body = {"email": new_email(), "password": PASSWORD}
        body[field] = body[field][:4] + control + body[field][4:]
        assert_refused(await post_json(client, "/users", body), 422)
        assert await count(context, User) == 0

    @pytest.mark.parametrize("field", ["current_password", "new_password"])
    async def test_in_a_password_change(
        self, client: httpx.AsyncClient, control: str, field: str
    ) -> None:
        user, tokens = await registered_login(client)
        body = {"current_password": PASSWORD, "new_password": "another good password"}
        body[field] = control + body[field]
        response = await post_json(client, "/users/me/password", body, bearer(tokens))
        assert_refused(response, 422)
        await login(client, user["email"])  # the password is unchanged

    async def test_in_a_password_reset_request(
        self, client: httpx.AsyncClient, context: AppContext, control: str
    ) -> None:
        user = await register(client)
        body = {"email": user["email"].replace("@", f"{control}@")}
        assert_refused(await post_json(client, "/password/forgot", body), 422)
        assert await count(context, AuditEvent) == 1  # the registration's: nothing more

    @pytest.mark.parametrize("field", ["token", "new_password"])
    async def test_in_a_password_reset(
        self, client: httpx.AsyncClient, context: AppContext, control: str, field: str
    ) -> None:
        user = await register(client)
        body = {"token": "pr_" + "A" * 43, "new_password": "another good password"}
        body[field] = body[field][:4] + control + body[field][4:]
        assert_refused(await post_json(client, "/password/reset", body), 422)
        assert await count(context, AuditEvent) == 1  # not even a refused link
        await login(client, user["email"])  # the password is unchanged

    @pytest.mark.parametrize("field", ["new_email", "current_password"])
    async def test_in_an_email_change(
        self, client: httpx.AsyncClient, context: AppContext, control: str, field: str
    ) -> None:
        user, tokens = await registered_login(client)
        body = {"new_email": new_email(), "current_password": PASSWORD}
        body[field] = body[field][:4] + control + body[field][4:]
        response = await post_json(client, "/users/me/email", body, bearer(tokens))
        assert_refused(response, 422)
        async with context.sessionmaker() as db:
            stored = await db.scalar(select(User.email).where(User.id == uuid.UUID(user["id"])))
        assert stored == user["email"]

    async def test_in_an_account_deletion(
        self, client: httpx.AsyncClient, context: AppContext, control: str
    ) -> None:
        user, tokens = await registered_login(client)
        content = json.dumps({"current_password": PASSWORD[:4] + control + PASSWORD[4:]})
        response = await client.request(
            "DELETE",
            "/users/me",
            content=content.encode(),
            headers={"Content-Type": "application/json", **bearer(tokens)},
        )
        assert_refused(response, 422)
        assert await count(context, User) == 1
        await login(client, user["email"])

    @pytest.mark.parametrize(("path", "status"), [("/refresh", 400), ("/logout", 422)])
    async def test_in_a_refresh_token(
        self, client: httpx.AsyncClient, control: str, path: str, status: int
    ) -> None:
        _, tokens = await registered_login(client)
        body = {"refresh_token": tokens["refresh_token"] + control}
        assert_refused(await post_json(client, path, body), status)
        # Refused before anything happened: the session goes on.
        response = await post_json(client, "/refresh", {"refresh_token": tokens["refresh_token"]})
        assert response.status_code == 200, response.text


async def admin_headers(client: httpx.AsyncClient, context: AppContext) -> dict[str, str]:
    user = await register(client)
    await update_user(context, user, role="admin")
    return bearer(await login(client, user["email"]))


class TestPasswords:
    @pytest.mark.parametrize(
        "password",
        ["correct horse 🐴 battery", "👩‍👩‍👧‍👦 family ẞ", "   spaces   ", "ﷺ Ωmega 日本語 ok"],
    )
    async def test_any_printable_unicode_is_a_password(
        self, client: httpx.AsyncClient, password: str
    ) -> None:
        user = await register(client, password=password)
        await login(client, user["email"], password=password)


class TestUserAgent:
    async def test_control_characters_are_stripped_before_it_is_stored(
        self, client: httpx.AsyncClient
    ) -> None:
        user = await register(client)
        headers = [(b"user-agent", b"Mozilla\x00/5.0 \x85(X11)\x1b")]
        response = await client.post(
            "/token",
            data={"grant_type": "password", "username": user["email"], "password": PASSWORD},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        sessions = (await client.get("/sessions", headers=bearer(response.json()))).json()
        assert [s["user_agent"] for s in sessions] == ["Mozilla/5.0 (X11)"]


# A link-local address with a zone id far longer than the columns (String(64)).
ZONED = "fe80::1%" + "a" * 80


class TestForwardedFor:
    async def test_a_zone_id_is_dropped_from_a_session(self, client: httpx.AsyncClient) -> None:
        user = await register(client)
        response = await client.post(
            "/token",
            data={"grant_type": "password", "username": user["email"], "password": PASSWORD},
            headers={"X-Forwarded-For": ZONED},
        )
        assert response.status_code == 200, response.text
        sessions = (await client.get("/sessions", headers=bearer(response.json()))).json()
        assert [s["ip"] for s in sessions] == ["fe80::1"]

    async def test_a_zone_id_is_dropped_from_the_audit_trail(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        response = await client.post(
            "/users",
            json={"email": new_email(), "password": PASSWORD},
            headers={"X-Forwarded-For": ZONED},
        )
        assert response.status_code == 201, response.text
        async with context.sessionmaker() as db:
            assert list(await db.scalars(select(AuditEvent.ip))) == ["fe80::1"]

    async def test_a_peer_that_is_no_address_is_bounded(self, app: FastAPI) -> None:
        transport = httpx.ASGITransport(app=app, client=("h" * 100 + "\x00", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.post(
                "/users", json={"email": new_email(), "password": PASSWORD}
            )
            assert response.status_code == 201, response.text
        context: AppContext = app.state.context
        async with context.sessionmaker() as db:
            assert list(await db.scalars(select(AuditEvent.ip))) == ["h" * 64]


class TestAuditQueryBounds:
    @pytest.mark.parametrize("before", [str(2**63), str(10**30), "-1", "0"])
    async def test_a_cursor_beyond_64_bits_is_refused(
        self, client: httpx.AsyncClient, context: AppContext, before: str
    ) -> None:
        admin = await admin_headers(client, context)
        response = await client.get("/admin/audit", params={"before": before}, headers=admin)
        assert_refused(response, 422)

    async def test_the_largest_cursor_is_served(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        admin = await admin_headers(client, context)
        response = await client.get(
            "/admin/audit", params={"before": str(2**63 - 1)}, headers=admin
        )
        assert response.status_code == 200, response.text
        assert response.json()["items"]

    @pytest.mark.parametrize(
        ("parameter", "instant", "finds_events"),
        [
            ("since", "9999-12-31T23:59:59-23:59", False),  # after year 9999 in UTC
            ("until", "0001-01-01T00:00:00+23:59", False),  # before year 1 in UTC
            ("since", "0001-01-01T00:00:00+23:59", True),
            ("until", "9999-12-31T23:59:59-23:59", True),
        ],
    )
    async def test_instants_beyond_what_a_datetime_holds(
        self,
        client: httpx.AsyncClient,
        context: AppContext,
        parameter: str,
        instant: str,
        finds_events: bool,
    ) -> None:
        admin = await admin_headers(client, context)
        response = await client.get("/admin/audit", params={parameter: instant}, headers=admin)
        assert response.status_code == 200, response.text
        assert bool(response.json()["items"]) is finds_events

    async def test_admin_users_limit_beyond_64_bits_is_refused(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        admin = await admin_headers(client, context)
        response = await client.get("/admin/users", params={"limit": str(10**30)}, headers=admin)
        assert_refused(response, 422)


class TestNullBodies:
    """A JSON `null` is no body: it must not pass for "no body, use the cookie"."""

    @pytest.mark.parametrize("path", ["/refresh", "/logout"])
    async def test_a_json_null_is_refused_and_changes_nothing(
        self, app: FastAPI, path: str
    ) -> None:
        transport = httpx.ASGITransport(app=app)
        # On https, so that the Secure refresh cookie is kept and sent back.
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as browser:
            user = await register(browser)
            mode = {"X-Token-Delivery": "cookie"}
            form = {"grant_type": "password", "username": user["email"], "password": PASSWORD}
            assert (await browser.post("/token", data=form, headers=mode)).status_code == 200
            assert_refused(await post_json(browser, path, None, mode), 400)
            # The cookie's session was neither rotated nor ended.
            response = await browser.post("/refresh", headers=mode)
            assert response.status_code == 200, response.text
