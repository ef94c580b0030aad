"""Ceremonies driven as a browser would: options from the server, the software
authenticator's answer, posted back."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from sqlalchemy import select

from authapi.audit.models import AuditEvent
from authapi.context import AppContext
from tests.support.authenticator import SoftwareAuthenticator
from tests.support.factories import bearer

PASSKEY_GRANT = "urn:authapi:params:oauth:grant-type:passkey"


async def creation_options(client: httpx.AsyncClient, tokens: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/users/me/passkeys/options", headers=bearer(tokens))
    assert response.status_code == 200, response.text
    options: dict[str, Any] = response.json()
    return options


async def add_passkey(
    client: httpx.AsyncClient,
    tokens: dict[str, Any],
    authenticator: SoftwareAuthenticator | None = None,
    *,
    name: str | None = None,
    **answer: Any,
) -> httpx.Response:
    """Register the authenticator's credential for the tokens' user; the response."""
    authenticator = authenticator or SoftwareAuthenticator()
    credential = authenticator.register(await creation_options(client, tokens), **answer)
    body = {"credential": json.dumps(credential), **({"name": name} if name is not None else {})}
    return await client.post("/users/me/passkeys", json=body, headers=bearer(tokens))


async def registered(
    client: httpx.AsyncClient, tokens: dict[str, Any], **authenticator: Any
) -> SoftwareAuthenticator:
    """A new authenticator whose passkey the tokens' user has registered."""
    made = SoftwareAuthenticator(**authenticator)
    response = await add_passkey(client, tokens, made)
    assert response.status_code == 201, response.text
    return made


async def login_options(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post("/passkeys/options", json={})
    assert response.status_code == 200, response.text
    options: dict[str, Any] = response.json()
    return options


async def passkey_login(client: httpx.AsyncClient, credential: dict[str, Any]) -> httpx.Response:
    return await client.post(
        "/token", data={"grant_type": PASSKEY_GRANT, "credential": json.dumps(credential)}
    )


async def events(context: AppContext, name: str) -> list[AuditEvent]:
    async with context.sessionmaker() as db:
        return list(await db.scalars(select(AuditEvent).where(AuditEvent.event == name)))


def user_id(user: dict[str, Any]) -> uuid.UUID:
    return uuid.UUID(user["id"])
