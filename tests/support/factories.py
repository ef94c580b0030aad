"""Small async helpers that drive the API the way a client does, and the rows that
service-level tests (`db_session`) start from."""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import event, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authapi.context import AppContext
from authapi.db import transaction
from authapi.sessions.models import LoginSession
from authapi.users.models import User
from tests.support.clock import FakeClock

PASSWORD = "correct horse battery"
_counter = itertools.count()


def new_email() -> str:
    return f"user{next(_counter)}@example.com"


async def register(
    client: httpx.AsyncClient, email: str | None = None, password: str = PASSWORD
) -> dict[str, Any]:
    response = await client.post(
        "/users", json={"email": email or new_email(), "password": password}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def login(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, **extra: str
) -> dict[str, Any]:
    response = await client.post(
        "/token", data={"grant_type": "password", "username": email, "password": password, **extra}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def registered_login(client: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new user and a fresh session of theirs: (user, token response)."""
    user = await register(client)
    return user, await login(client, user["email"])


def password_form(email: str, password: str = PASSWORD) -> dict[str, str]:
    return {"grant_type": "password", "username": email, "password": password}


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post("/refresh", json={"refresh_token": refresh_token})


async def log_out(client: httpx.AsyncClient, tokens: dict[str, Any]) -> None:
    response = await client.post("/logout", json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 204, response.text


async def two_sessions(
    client: httpx.AsyncClient,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A new user and two sessions of theirs: (user, token response, token response)."""
    user = await register(client)
    return user, await login(client, user["email"]), await login(client, user["email"])


async def refresh_works(client: httpx.AsyncClient, tokens: dict[str, Any]) -> bool:
    """Whether the session of these tokens still refreshes (their refresh token is current)."""
    return (await refresh(client, tokens["refresh_token"])).status_code == 200


def bearer(tokens: dict[str, Any] | str) -> dict[str, str]:
    token = tokens if isinstance(tokens, str) else tokens["access_token"]
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def hashing_blocked(context: AppContext) -> Iterator[None]:
    """Keep every password-hashing thread busy until the block ends (always released,
    so a failing test cannot leave a thread waiting for ever)."""
    release = threading.Event()
    hasher = context.hasher
    blockers = [hasher._executor.submit(release.wait) for _ in range(context.settings.hash_workers)]
    try:
        yield
    finally:
        release.set()
        for blocker in blockers:
            blocker.result()


async def update_user(context: AppContext, user: dict[str, Any], **values: Any) -> None:
    """Change a user's row directly, as an operator (or a later feature) would."""
    async with context.sessionmaker() as db:
        await db.execute(update(User).where(User.id == uuid.UUID(user["id"])).values(**values))
        await db.commit()


async def user_count(context: AppContext) -> int:
    """How many users the app's database holds."""
    async with context.sessionmaker() as db:
        return int(await db.scalar(select(func.count()).select_from(User)) or 0)


@contextmanager
def statements_sent(context: AppContext) -> Iterator[list[str]]:
    """The SQL statements the app sends to its database meanwhile."""
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(context.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(context.engine.sync_engine, "before_cursor_execute", count)


async def make_admin(
    client: httpx.AsyncClient, context: AppContext, email: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new admin and a fresh session of theirs: (user, token response)."""
    user = await register(client, email)
    await update_user(context, user, role="admin")
    return user, await login(client, user["email"])


async def list_all(
    client: httpx.AsyncClient, admin: dict[str, Any], **params: Any
) -> list[list[dict[str, Any]]]:
    """Every page of GET /admin/users, following next_after."""
    pages: list[list[dict[str, Any]]] = []
    for _ in range(20):
        response = await client.get("/admin/users", params=params, headers=bearer(admin))
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["items"])
        if body["next_after"] is None:
            return pages
        params["after"] = body["next_after"]
    raise AssertionError("pagination does not end")


# Rows for service-level tests (`db_session`), as the services leave them.


def user_row(*, now: datetime, **values: Any) -> User:
    """A user as the users table holds it, for a service-level test to add. Its password
    hash is no hash: nobody logs in with it (tests that log in use users.service)."""
    row = {
        "id": uuid.uuid4(),
        "email": new_email(),
        "password_hash": "!",
        "role": "user",
        "is_active": True,
        "created_at": now,
    }
    return User(**{**row, **values})


async def add_user(
    maker: async_sessionmaker[AsyncSession], clock: FakeClock, email: str | None = None
) -> User:
    """A user (a `user_row`, at the clock's now) committed through `maker`, for tests that
    build services themselves instead of the app."""
    user = user_row(now=clock.now(), **({"email": email} if email else {}))
    async with transaction(maker) as db:
        db.add(user)
    return user


def session_row(
    user: User, *, now: datetime, idle: timedelta, lifetime: timedelta, **values: Any
) -> LoginSession:
    """A session of `user` as a login at `now` leaves it (on generation 0), for a
    service-level test to add."""
    row = {
        "id": uuid.uuid4(),
        "user_id": user.id,
        "generation": 0,
        "scope": "profile",
        "amr": "pwd",
        "created_at": now,
        "last_used_at": now,
        "rotated_at": None,
        "expires_at": min(now + idle, now + lifetime),
        "absolute_expires_at": now + lifetime,
        "revoked_at": None,
        "revoked_reason": None,
        "user_agent": None,
        "ip": None,
    }
    return LoginSession(**{**row, **values})
