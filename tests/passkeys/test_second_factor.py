"""A passkey as the second factor: options bound to the user, and the assertion checked
against that user only (PostgreSQL and SQLite)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from authapi.client_address import Requester
from authapi.context import AppContext
from authapi.db import transaction
from authapi.errors import PasskeyRefused
from authapi.passkeys import service
from tests.passkeys.helpers import registered, user_id
from tests.support.authenticator import b64url
from tests.support.factories import bearer, registered_login

REQUESTER = Requester(ip="127.0.0.1", user_agent="test")


async def step_up_options(client: httpx.AsyncClient, tokens: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/users/me/passkeys/step-up-options", headers=bearer(tokens))
    assert response.status_code == 200, response.text
    options: dict[str, Any] = response.json()
    return options


async def verify(context: AppContext, credential: dict[str, Any], user: dict[str, Any]) -> Any:
    assert context.relying_party is not None
    async with transaction(context.sessionmaker) as db:
        return await service.verify_second_factor(
            db,
            context.relying_party,
            json.dumps(credential),
            user_id=user_id(user),
            now=context.clock.now(),
            requester=REQUESTER,
        )


class TestSecondFactor:
    async def test_the_options_name_the_users_passkeys(self, client: httpx.AsyncClient) -> None:
        _, tokens = await registered_login(client)
        authenticator = await registered(client, tokens)
        options = await step_up_options(client, tokens)
        assert [c["id"] for c in options["allowCredentials"]] == [
            b64url(authenticator.credential_id)
        ]
        assert options["userVerification"] == "required"

    async def test_the_users_passkey_verifies(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user, tokens = await registered_login(client)
        authenticator = await registered(client, tokens, backup_eligible=True)
        credential = authenticator.sign_in(await step_up_options(client, tokens))
        assert await verify(context, credential, user) == ("swk",)
        with pytest.raises(PasskeyRefused):  # once only
            await verify(context, credential, user)

    async def test_another_users_challenge_or_passkey_is_refused(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user, tokens = await registered_login(client)
        mine = await registered(client, tokens)
        other, other_tokens = await registered_login(client)
        theirs = await registered(client, other_tokens)
        # Their challenge, my passkey; then my challenge, their passkey.
        with pytest.raises(PasskeyRefused):
            await verify(context, mine.sign_in(await step_up_options(client, other_tokens)), user)
        with pytest.raises(PasskeyRefused):
            await verify(context, theirs.sign_in(await step_up_options(client, tokens)), user)
        del other

    async def test_a_passwordless_login_challenge_is_no_second_factor(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user, tokens = await registered_login(client)
        authenticator = await registered(client, tokens)
        options = (await client.post("/passkeys/options", json={})).json()
        with pytest.raises(PasskeyRefused):
            await verify(context, authenticator.sign_in(options), user)
