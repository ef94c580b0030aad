"""The `amr` claim (RFC 8176): every access token says how its login was made, and a
refresh keeps the login's methods."""

from __future__ import annotations

import httpx
import jwt

from tests.support.factories import bearer, refresh, registered_login


def amr_of(tokens: dict[str, object]) -> object:
    token = tokens["access_token"]
    assert isinstance(token, str)
    return jwt.decode(token, options={"verify_signature": False})["amr"]


class TestAuthMethods:
    async def test_a_password_login_says_pwd(self, client: httpx.AsyncClient) -> None:
        _, tokens = await registered_login(client)
        assert amr_of(tokens) == ["pwd"]
        claims = await client.get("/whoami", headers=bearer(tokens))
        assert claims.json()["amr"] == ["pwd"]

    async def test_a_refresh_keeps_the_methods_of_the_login(
        self, client: httpx.AsyncClient
    ) -> None:
        _, tokens = await registered_login(client)
        for _ in range(2):
            response = await refresh(client, tokens["refresh_token"])
            assert response.status_code == 200
            tokens = response.json()
            assert amr_of(tokens) == ["pwd"]
