"""The step-up of sensitive changes: with a second factor on, the password alone is
not enough — a code (or a passkey) is asked too."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.mfa.helpers import enable_totp
from tests.support.clock import FakeClock
from tests.support.factories import PASSWORD, bearer, new_email, registered_login

# (method, path, body beyond current_password, the status of a change that passes)
CHANGES: dict[str, tuple[str, str, dict[str, Any], int]] = {
    "password": ("POST", "/users/me/password", {"new_password": "another long password"}, 204),
    "email": ("POST", "/users/me/email", {"new_email": "later"}, 202),
    "deletion": ("DELETE", "/users/me", {}, 204),
    "totp off": ("DELETE", "/users/me/mfa/totp", {}, 204),
    "recovery codes": ("POST", "/users/me/mfa/recovery-codes", {}, 200),
}


async def change(
    client: httpx.AsyncClient, tokens: dict[str, Any], name: str, **second: str
) -> httpx.Response:
    method, path, extra, _ = CHANGES[name]
    body = {**extra, "current_password": PASSWORD, **second}
    if body.get("new_email") == "later":
        body["new_email"] = new_email()
    return await client.request(method, path, json=body, headers=bearer(tokens))


@pytest.mark.parametrize("name", list(CHANGES))
class TestStepUp:
    async def test_the_password_alone_is_refused(
        self, client: httpx.AsyncClient, clock: FakeClock, name: str
    ) -> None:
        _, tokens = await registered_login(client)
        await enable_totp(client, tokens, clock)
        response = await change(client, tokens, name)
        assert response.status_code == 403
        assert response.json()["error"] == "mfa_required"

    async def test_a_wrong_code_is_refused(
        self, client: httpx.AsyncClient, clock: FakeClock, name: str
    ) -> None:
        _, tokens = await registered_login(client)
        await enable_totp(client, tokens, clock)
        response = await change(client, tokens, name, otp="000000")
        assert response.status_code == 403
        assert response.json()["error"] == "invalid_credentials"

    async def test_a_wrong_password_with_a_right_code_is_refused(
        self, client: httpx.AsyncClient, clock: FakeClock, name: str
    ) -> None:
        _, tokens = await registered_login(client)
        totp = await enable_totp(client, tokens, clock)
        method, path, extra, _ = CHANGES[name]
        body = {**extra, "current_password": "wrong", "otp": totp.code(clock)}
        if body.get("new_email") == "later":
            body["new_email"] = new_email()
        response = await client.request(method, path, json=body, headers=bearer(tokens))
        assert response.status_code == 403
        assert response.json()["error"] == "invalid_credentials"

    async def test_the_password_and_a_code_pass(
        self, client: httpx.AsyncClient, clock: FakeClock, name: str
    ) -> None:
        _, tokens = await registered_login(client)
        totp = await enable_totp(client, tokens, clock)
        response = await change(client, tokens, name, otp=totp.code(clock))
        assert response.status_code == CHANGES[name][3], response.text


@pytest.mark.parametrize("name", ["password", "email", "deletion"])
async def test_without_a_second_factor_the_password_is_enough(
    client: httpx.AsyncClient, name: str
) -> None:
    _, tokens = await registered_login(client)
    response = await change(client, tokens, name)
    assert response.status_code == CHANGES[name][3], response.text
