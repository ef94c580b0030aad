"""The access path stays off the database, revocation check included."""

from __future__ import annotations

import httpx
import pytest

from authapi.context import AppContext
from tests.support.factories import bearer, login, registered_login, statements_sent


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    # Neither the safety-net poll nor the signing keys' reload is the access path.
    return {"revocation_poll_interval": 60, "key_reload_interval": 60}


async def test_a_thousand_whoami_calls_send_no_statement(
    client: httpx.AsyncClient, context: AppContext
) -> None:
    user, revoked = await registered_login(client)
    valid = await login(client, user["email"])
    response = await client.post("/logout", json={"refresh_token": revoked["refresh_token"]})
    assert response.status_code == 204
    with statements_sent(context) as statements:
        for call in range(1000):
            tokens, expected = (valid, 200) if call % 2 else (revoked, 401)
            response = await client.get("/whoami", headers=bearer(tokens))
            assert response.status_code == expected
    assert statements == []
