"""Logging in with a passkey and no password: the request options, the passkey grant,
and each assertion it must refuse (PostgreSQL and SQLite)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from authapi.context import AppContext
from tests.oauth.test_amr import amr_of
from tests.passkeys.helpers import (
    PASSKEY_GRANT,
    creation_options,
    events,
    login_options,
    passkey_login,
    registered,
    user_id,
)
from tests.support.authenticator import SoftwareAuthenticator, b64url, unb64url
from tests.support.factories import (
    bearer,
    login,
    refresh,
    register,
    registered_login,
    update_user,
)


async def user_with_passkey(
    client: httpx.AsyncClient, **authenticator: Any
) -> tuple[dict[str, Any], SoftwareAuthenticator]:
    user, tokens = await registered_login(client)
    return user, await registered(client, tokens, **authenticator)


def refused(response: httpx.Response) -> bool:
    return response.status_code == 400 and response.json()["error"] == "invalid_grant"


class TestRequestOptions:
    async def test_a_discoverable_login(self, client: httpx.AsyncClient) -> None:
        options = await login_options(client)
        assert options["rpId"] == "localhost"
        assert options["userVerification"] == "required"
        assert options["allowCredentials"] == []
        assert len(unb64url(options["challenge"])) == 32

    async def test_unknown_fields_are_refused(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/passkeys/options", json={"user": "x"})
        assert response.status_code == 422


class TestPasskeyGrant:
    async def test_login_without_a_password(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user, authenticator = await user_with_passkey(client)
        response = await passkey_login(client, authenticator.sign_in(await login_options(client)))
        assert response.status_code == 200, response.text
        tokens = response.json()
        assert amr_of(tokens) == ["hwk", "mfa"]
        me = await client.get("/users/me", headers=bearer(tokens))
        assert me.json()["id"] == user["id"]
        # A refresh keeps the login's methods.
        refreshed = await refresh(client, tokens["refresh_token"])
        assert amr_of(refreshed.json()) == ["hwk", "mfa"]
        [passkey] = (await client.get("/users/me/passkeys", headers=bearer(tokens))).json()
        assert passkey["last_used_at"] is not None
        logins = [e for e in await events(context, "login_succeeded") if e.detail == "passkey"]
        assert [e.user_id for e in logins] == [user_id(user)]

    async def test_a_synced_passkey_is_a_software_key(self, client: httpx.AsyncClient) -> None:
        _, authenticator = await user_with_passkey(client, backup_eligible=True)
        response = await passkey_login(client, authenticator.sign_in(await login_options(client)))
        assert amr_of(response.json()) == ["swk", "mfa"]

    async def test_browser_mode_puts_the_refresh_token_in_the_cookie(
        self, client: httpx.AsyncClient
    ) -> None:
        _, authenticator = await user_with_passkey(client)
        credential = authenticator.sign_in(await login_options(client))
        response = await client.post(
            "/token",
            data={"grant_type": PASSKEY_GRANT, "credential": json.dumps(credential)},
            headers={"X-Token-Delivery": "cookie", "Origin": "http://localhost:8000"},
        )
        assert response.status_code == 200, response.text
        assert "refresh_token" not in response.json()
        assert response.headers["set-cookie"]

    async def test_the_same_assertion_twice(self, client: httpx.AsyncClient) -> None:
        _, authenticator = await user_with_passkey(client)
        credential = authenticator.sign_in(await login_options(client))
        assert (await passkey_login(client, credential)).status_code == 200
        assert refused(await passkey_login(client, credential))

    async def test_one_challenge_at_once_passes_once(self, client: httpx.AsyncClient) -> None:
        _, authenticator = await user_with_passkey(client)
        options = await login_options(client)
        first = authenticator.sign_in(options)
        second = authenticator.sign_in(options)  # a higher counter, the same challenge
        answers = await asyncio.gather(passkey_login(client, first), passkey_login(client, second))
        assert sorted(r.status_code for r in answers) == [200, 400]

    async def test_a_forged_signature(self, client: httpx.AsyncClient) -> None:
        _, authenticator = await user_with_passkey(client)
        credential = authenticator.sign_in(await login_options(client))
        signature = bytearray(unb64url(credential["response"]["signature"]))
        signature[-1] ^= 1
        credential["response"]["signature"] = b64url(bytes(signature))
        assert refused(await passkey_login(client, credential))

    async def test_another_key_signing_for_the_credential(self, client: httpx.AsyncClient) -> None:
        _, authenticator = await user_with_passkey(client)
        impostor = SoftwareAuthenticator(
            credential_id=authenticator.credential_id, user_handle=authenticator.user_handle
        )
        assert refused(await passkey_login(client, impostor.sign_in(await login_options(client))))

    async def test_a_counter_going_backwards_is_refused_and_audited(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user, authenticator = await user_with_passkey(client)
        authenticator.sign_count = 5
        assert (
            await passkey_login(client, authenticator.sign_in(await login_options(client)))
        ).status_code == 200
        authenticator.sign_count = 3  # a clone of the authenticator, earlier in its life
        assert refused(
            await passkey_login(client, authenticator.sign_in(await login_options(client)))
        )
        # The same counter again is no increase either.
        authenticator.sign_count = 5
        credential = authenticator.sign_in(await login_options(client), count=False)
        assert refused(await passkey_login(client, credential))
        regressed = await events(context, "passkey_counter_regressed")
        assert [e.user_id for e in regressed] == [user_id(user)] * 2  # committed though refused

    async def test_a_zero_counter_may_stay_zero(self, client: httpx.AsyncClient) -> None:
        # Synced passkeys report 0 always (WebAuthn §6.1.1): no counter to check.
        _, authenticator = await user_with_passkey(client)
        for _ in range(2):
            credential = authenticator.sign_in(await login_options(client), count=False)
            assert (await passkey_login(client, credential)).status_code == 200

    async def test_no_user_verification(self, client: httpx.AsyncClient) -> None:
        _, authenticator = await user_with_passkey(client)
        authenticator.user_verified = False
        assert refused(
            await passkey_login(client, authenticator.sign_in(await login_options(client)))
        )

    @pytest.mark.parametrize(
        "answer",
        [{"origin": "https://evil.example"}, {"rp_id": "evil.example"}],
        ids=["wrong origin", "wrong RP ID hash"],
    )
    async def test_another_site(self, client: httpx.AsyncClient, answer: dict[str, Any]) -> None:
        _, authenticator = await user_with_passkey(client)
        credential = authenticator.sign_in(await login_options(client), **answer)
        assert refused(await passkey_login(client, credential))

    async def test_an_unknown_credential(self, client: httpx.AsyncClient) -> None:
        await user_with_passkey(client)
        stranger = SoftwareAuthenticator(user_handle=b"\x00" * 16, rp_id="localhost")
        assert refused(await passkey_login(client, stranger.sign_in(await login_options(client))))

    async def test_a_user_handle_of_another_user(self, client: httpx.AsyncClient) -> None:
        _, authenticator = await user_with_passkey(client)
        other, _ = await user_with_passkey(client)
        authenticator.user_handle = user_id(other).bytes
        assert refused(
            await passkey_login(client, authenticator.sign_in(await login_options(client)))
        )

    async def test_a_challenge_of_another_ceremony(self, client: httpx.AsyncClient) -> None:
        _, tokens = await registered_login(client)
        authenticator = await registered(client, tokens)
        # A registration's challenge, bound to the user, signed as if for a login.
        credential = authenticator.sign_in(
            await creation_options(client, tokens), rp_id="localhost"
        )
        assert refused(await passkey_login(client, credential))

    async def test_an_expired_challenge(self, client: httpx.AsyncClient, clock: Any) -> None:
        _, authenticator = await user_with_passkey(client)
        credential = authenticator.sign_in(await login_options(client))
        clock.advance(301)
        assert refused(await passkey_login(client, credential))

    async def test_a_disabled_user(self, client: httpx.AsyncClient, context: AppContext) -> None:
        user, authenticator = await user_with_passkey(client)
        await update_user(context, user, is_active=False)
        assert refused(
            await passkey_login(client, authenticator.sign_in(await login_options(client)))
        )

    @pytest.mark.parametrize("settings_overrides", [{"require_verified_email": True}])
    async def test_an_unverified_address_when_verification_is_required(
        self, client: httpx.AsyncClient, context: AppContext
    ) -> None:
        user = await register(client)
        await update_user(context, user, email_verified=True)
        authenticator = await registered(client, await login(client, user["email"]))
        await update_user(context, user, email_verified=False)
        credential = authenticator.sign_in(await login_options(client))
        assert refused(await passkey_login(client, credential))

    @pytest.mark.parametrize(
        "credential",
        ["", "not json", "[]", "{}", json.dumps({"id": "A$", "rawId": "A$"}), "x" * 17000],
    )
    async def test_hostile_credentials(self, client: httpx.AsyncClient, credential: str) -> None:
        response = await client.post(
            "/token", data={"grant_type": PASSKEY_GRANT, "credential": credential}
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_request"


class TestBrokenAssertions:
    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("authenticatorData", ""),
            ("authenticatorData", "AAAA"),
            ("authenticatorData", "!!"),
            ("signature", ""),
            ("signature", "not base64url at all"),
            ("signature", None),
            ("userHandle", 5),
            ("userHandle", "%%"),
        ],
    )
    async def test_a_live_challenge_with_a_broken_field(
        self, client: httpx.AsyncClient, field: str, value: object
    ) -> None:
        _, authenticator = await user_with_passkey(client)
        credential = authenticator.sign_in(await login_options(client))
        credential["response"][field] = value
        response = await passkey_login(client, credential)
        assert response.status_code == 400, response.text
        assert response.json()["error"] in ("invalid_grant", "invalid_request")


class TestMetadata:
    async def test_the_grant_is_advertised(self, client: httpx.AsyncClient) -> None:
        document = (await client.get("/.well-known/oauth-authorization-server")).json()
        assert PASSKEY_GRANT in document["grant_types_supported"]


class TestWithoutARelyingParty:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"issuer": "http://127.0.0.1:8000"}

    async def test_passkeys_are_not_found(self, client: httpx.AsyncClient) -> None:
        _, tokens = await registered_login(client)
        assert (await client.post("/passkeys/options", json={})).status_code == 404
        assert (await client.get("/users/me/passkeys", headers=bearer(tokens))).status_code == 404
        assert (
            await client.post("/users/me/passkeys/options", headers=bearer(tokens))
        ).status_code == 404
        response = await client.post(
            "/token", data={"grant_type": PASSKEY_GRANT, "credential": "{}"}
        )
        assert response.status_code == 400
        assert response.json()["error"] == "unsupported_grant_type"
        document = (await client.get("/.well-known/oauth-authorization-server")).json()
        assert PASSKEY_GRANT not in document["grant_types_supported"]
