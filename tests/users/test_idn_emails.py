"""Internationalised domains: one stored form (Unicode), and both spellings of the
domain (`bücher.example`, `xn--bcher-kva.example`) reach it, for logging in and for the
admin filter."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select

from authapi.context import AppContext
from authapi.users.models import User
from tests.support.factories import bearer, list_all, login, make_admin, register
from tests.support.settings import CHEAP_HASHES

UNICODE = "bob@bücher.example"
A_LABELS = "bob@xn--bcher-kva.example"


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    # Several logins per test: no rate limit, cheap hashes.
    return {"rate_limit_enabled": False, **CHEAP_HASHES}


async def stored_email(context: AppContext, user_id: str) -> str:
    async with context.sessionmaker() as db:
        email = await db.scalar(select(User.email).where(User.id == uuid.UUID(user_id)))
    assert email is not None
    return email


class TestStoredForm:
    @pytest.mark.parametrize("spelling", [UNICODE, A_LABELS, "Bob@XN--BCHER-KVA.example"])
    async def test_either_spelling_is_stored_in_unicode(
        self, client: httpx.AsyncClient, context: AppContext, spelling: str
    ) -> None:
        user = await register(client, spelling)
        assert user["email"] == UNICODE
        assert await stored_email(context, user["id"]) == UNICODE


class TestLogin:
    @pytest.mark.parametrize(
        ("registered", "logged_in"), [(UNICODE, A_LABELS), (A_LABELS, UNICODE)]
    )
    async def test_either_spelling_logs_in(
        self, client: httpx.AsyncClient, registered: str, logged_in: str
    ) -> None:
        user = await register(client, registered)
        tokens = await login(client, logged_in)
        claims = await client.get("/whoami", headers=bearer(tokens))
        assert claims.json()["sub"] == user["id"]


class TestAdminFilter:
    @pytest.mark.parametrize(
        ("fragment", "found"),
        [
            ("bücher", [UNICODE]),
            ("BÜCHER.EXAMPLE", [UNICODE]),
            ("xn--bcher-kva", [UNICODE]),
            ("xn--bcher-kva.example", [UNICODE]),
            ("XN--BCHER-KVA.example", [UNICODE]),
            ("@xn--bcher-kva.example", [UNICODE]),
            (A_LABELS, [UNICODE]),
            # An `xn--` that is no domain label is matched as typed.
            ("xn--odd", ["xn--odd@example.org"]),
            ("example", ["ann@example.com", UNICODE, "xn--odd@example.org"]),
        ],
    )
    async def test_matches_both_spellings(
        self, client: httpx.AsyncClient, context: AppContext, fragment: str, found: list[str]
    ) -> None:
        for email in [UNICODE, "ann@example.com", "xn--odd@example.org"]:
            await register(client, email)
        _, tokens = await make_admin(client, context, "root@corp.net")
        pages = await list_all(client, tokens, email=fragment, limit=2)
        assert [item["email"] for page in pages for item in page] == found
