"""Registering, listing and removing passkeys (PostgreSQL and SQLite)."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from typing import Any

import httpx
import pytest

from authapi.context import AppContext
from tests.passkeys.helpers import add_passkey, creation_options, events, registered
from tests.support.authenticator import SoftwareAuthenticator, b64url
from tests.support.factories import PASSWORD, bearer, login, refresh_works, registered_login


async def post_credential(
    client: httpx.AsyncClient, tokens: dict[str, Any], credential: str, **extra: Any
) -> httpx.Response:
    return await client.post(
        "/users/me/passkeys", json={"credential": credential, **extra}, headers=bearer(tokens)
    )


class TestCreationOptions:
    async def test_the_options_a_browser_parses(self, client: httpx.AsyncClient) -> None:
        user, tokens = await registered_login(client)
        options = await creation_options(client, tokens)
        assert options["rp"] == {"id": "localhost", "name": "authapi"}
        assert options["user"]["name"] == user["email"]
        assert base64.urlsafe_b64decode(options["user"]["id"] + "==") == uuid.UUID(user["id"]).bytes
        assert len(base64.urlsafe_b64decode(options["challenge"] + "==")) == 32
        assert [p["alg"] for p in options["pubKeyCredParams"]] == [-7, -8, -257]
        assert options["attestation"] == "none"
        assert options["authenticatorSelection"]["residentKey"] == "preferred"
        assert options["authenticatorSelection"]["userVerification"] == "required"
        assert options["excludeCredentials"] == []

    async def test_registered_passkeys_are_excluded(self, client: httpx.AsyncClient) -> None:
        _, tokens = await registered_login(client)
        authenticator = await registered(client, tokens)
        excluded = (await creation_options(client, tokens))["excludeCredentials"]
        assert [entry["id"] for entry in excluded] == [b64url(authenticator.credential_id)]
        assert excluded[0]["transports"] == ["internal", "hybrid"]

    async def test_needs_a_bearer_token(self, client: httpx.AsyncClient) -> None:
        assert (await client.post("/users/me/passkeys/options")).status_code == 401


class TestRegistration:
    async def test_register_then_list(self, client: httpx.AsyncClient, context: AppContext) -> None:
        _, tokens = await registered_login(client)
        assert (await client.get("/users/me", headers=bearer(tokens))).json()[
            "mfa_enabled"
        ] is False
        response = await add_passkey(client, tokens, name="Laptop")
        assert response.status_code == 201, response.text
        added = response.json()
        assert added["name"] == "Laptop"
        assert added["last_used_at"] is None
        assert added["backup_eligible"] is False
        listed = await client.get("/users/me/passkeys", headers=bearer(tokens))
        assert [p["id"] for p in listed.json()] == [added["id"]]
        me = await client.get("/users/me", headers=bearer(tokens))
        assert me.json()["mfa_enabled"] is True  # shown at once, despite the profile cache
        assert [e.detail for e in await events(context, "passkey_added")] == [added["id"]]

    async def test_a_default_name_and_a_synced_passkey(self, client: httpx.AsyncClient) -> None:
        _, tokens = await registered_login(client)
        response = await add_passkey(client, tokens, SoftwareAuthenticator(backup_eligible=True))
        assert response.json()["name"].startswith("Passkey 20")
        assert response.json()["backup_eligible"] is True

    async def test_a_credential_registered_already_is_a_conflict(
        self, client: httpx.AsyncClient
    ) -> None:
        _, tokens = await registered_login(client)
        authenticator = await registered(client, tokens)
        _, other = await registered_login(client)
        response = await add_passkey(client, other, authenticator)
        assert response.status_code == 409
        assert response.json()["error"] == "passkey_registered"

    async def test_one_credential_registered_twice_at_once(self, client: httpx.AsyncClient) -> None:
        _, tokens = await registered_login(client)
        _, other = await registered_login(client)
        authenticator = SoftwareAuthenticator()
        answers = [
            authenticator.register(await creation_options(client, each)) for each in (tokens, other)
        ]
        responses = await asyncio.gather(
            post_credential(client, tokens, json.dumps(answers[0])),
            post_credential(client, other, json.dumps(answers[1])),
        )
        assert sorted(r.status_code for r in responses) == [201, 409]

    @pytest.mark.parametrize(
        ("answer", "authenticator"),
        [
            ({"origin": "https://evil.example"}, {}),
            ({"rp_id": "evil.example"}, {}),
            ({}, {"user_verified": False}),
        ],
        ids=["wrong origin", "wrong RP ID hash", "no user verification"],
    )
    async def test_refused(
        self, client: httpx.AsyncClient, answer: dict[str, Any], authenticator: dict[str, Any]
    ) -> None:
        _, tokens = await registered_login(client)
        response = await add_passkey(
            client, tokens, SoftwareAuthenticator(**authenticator), **answer
        )
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"
        assert (await client.get("/users/me/passkeys", headers=bearer(tokens))).json() == []

    async def test_a_challenge_works_once(self, client: httpx.AsyncClient) -> None:
        _, tokens = await registered_login(client)
        credential = SoftwareAuthenticator().register(await creation_options(client, tokens))
        assert (await post_credential(client, tokens, json.dumps(credential))).status_code == 201
        again = SoftwareAuthenticator().register(await creation_options(client, tokens))
        again["response"]["clientDataJSON"] = credential["response"]["clientDataJSON"]
        assert (await post_credential(client, tokens, json.dumps(again))).status_code == 400

    async def test_another_users_challenge_is_refused(self, client: httpx.AsyncClient) -> None:
        _, tokens = await registered_login(client)
        _, other = await registered_login(client)
        credential = SoftwareAuthenticator().register(await creation_options(client, other))
        assert (await post_credential(client, tokens, json.dumps(credential))).status_code == 400

    async def test_an_expired_challenge_is_refused(
        self, client: httpx.AsyncClient, clock: Any
    ) -> None:
        _, tokens = await registered_login(client)
        credential = SoftwareAuthenticator().register(await creation_options(client, tokens))
        clock.advance(301)
        assert (await post_credential(client, tokens, json.dumps(credential))).status_code == 400

    @pytest.mark.parametrize(
        "credential",
        [
            "not json",
            "[1, 2]",
            '"a string"',
            "{}",
            json.dumps({"id": "AA", "rawId": "AA", "response": {}}),
            json.dumps({"id": "A$", "rawId": "A$", "response": {"clientDataJSON": "e30"}}),
            json.dumps({"id": "AA", "rawId": "AA", "response": {"clientDataJSON": "!!!"}}),
            json.dumps(
                {"id": "AA", "rawId": "AA", "response": {"clientDataJSON": b64url(b"\xff")}}
            ),
            json.dumps({"id": "AA", "rawId": "AQ", "response": {"clientDataJSON": "e30"}}),
            "[" * 5000 + "]" * 5000,
            json.dumps({"x": "a" * 17000}),
        ],
        ids=[
            "not JSON",
            "an array",
            "a string",
            "no fields",
            "no clientDataJSON",
            "bad base64url id",
            "bad base64url clientDataJSON",
            "clientDataJSON not UTF-8",
            "id and rawId differ",
            "deeply nested",
            "huge",
        ],
    )
    async def test_hostile_input_is_a_4xx(self, client: httpx.AsyncClient, credential: str) -> None:
        _, tokens = await registered_login(client)
        response = await post_credential(client, tokens, credential)
        assert response.status_code in (400, 422), response.text
        assert response.json()["error"] == "invalid_request"

    async def test_a_challenge_the_server_knows_but_a_broken_attestation(
        self, client: httpx.AsyncClient
    ) -> None:
        _, tokens = await registered_login(client)
        credential = SoftwareAuthenticator().register(await creation_options(client, tokens))
        for broken in ("", "AAAA", b64url(b"\xa1\x63fmt\x64none")):
            credential["response"]["attestationObject"] = broken
            response = await post_credential(client, tokens, json.dumps(credential))
            assert response.status_code == 400, response.text

    @pytest.mark.parametrize("name", ["a\nb", "x" * 65, ""])
    async def test_names_follow_the_text_rules(self, client: httpx.AsyncClient, name: str) -> None:
        _, tokens = await registered_login(client)
        response = await add_passkey(client, tokens, name=name)
        assert response.status_code == 422


class TestRemoval:
    async def test_remove_with_the_password_and_a_passkey(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        # A passkey is a second factor: removing one asks the password and a factor.
        user, tokens = await registered_login(client)
        other_session = await login(client, user["email"])
        authenticator = await registered(client, tokens)
        [passkey] = (await client.get("/users/me/passkeys", headers=bearer(tokens))).json()
        path = f"/users/me/passkeys/{passkey['id']}"
        wrong = await client.request(
            "DELETE", path, json={"current_password": "wrong one"}, headers=bearer(tokens)
        )
        assert wrong.status_code == 403
        alone = await client.request(
            "DELETE", path, json={"current_password": PASSWORD}, headers=bearer(tokens)
        )
        assert alone.status_code == 403
        assert alone.json()["error"] == "mfa_required"
        options = await client.post("/users/me/passkeys/step-up-options", headers=bearer(tokens))
        assertion = json.dumps(authenticator.sign_in(options.json()))
        response = await client.request(
            "DELETE",
            path,
            json={"current_password": PASSWORD, "passkey": assertion},
            headers=bearer(tokens),
        )
        assert response.status_code == 204, response.text
        assert (await client.get("/users/me/passkeys", headers=bearer(tokens))).json() == []
        assert (await client.get("/users/me", headers=bearer(tokens))).json()[
            "mfa_enabled"
        ] is False
        assert [e.detail for e in await events(context, "passkey_removed")] == [passkey["id"]]
        # The last factor went: the other sessions end, this one stays.
        assert await refresh_works(client, tokens)
        assert not await refresh_works(client, other_session)

    async def test_another_users_or_an_unknown_passkey_is_not_found(
        self, client: httpx.AsyncClient
    ) -> None:
        _, owner = await registered_login(client)
        await registered(client, owner)
        [passkey] = (await client.get("/users/me/passkeys", headers=bearer(owner))).json()
        _, other = await registered_login(client)
        for passkey_id in (passkey["id"], str(uuid.uuid4())):
            response = await client.request(
                "DELETE",
                f"/users/me/passkeys/{passkey_id}",
                json={"current_password": PASSWORD},
                headers=bearer(other),
            )
            assert response.status_code == 404
        assert len((await client.get("/users/me/passkeys", headers=bearer(owner))).json()) == 1

    async def test_a_malformed_id_is_a_4xx(self, client: httpx.AsyncClient) -> None:
        _, tokens = await registered_login(client)
        response = await client.request(
            "DELETE",
            "/users/me/passkeys/not-an-id",
            json={"current_password": PASSWORD},
            headers=bearer(tokens),
        )
        # No such resource: the path only names passkeys by their UUIDs (so that
        # /users/me/passkeys/options is no passkey's path).
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
