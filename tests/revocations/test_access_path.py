"""The access path stays off the database, revocation check included."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import event

from authapi.context import AppContext
from tests.factories import bearer, login, registered_login


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
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(context.engine.sync_engine, "before_cursor_execute", count)
    try:
        for call in range(1000):
            tokens, expected = (valid, 200) if call % 2 else (revoked, 401)
            response = await client.get("/whoami", headers=bearer(tokens))
            assert response.status_code == expected
    finally:
        event.remove(context.engine.sync_engine, "before_cursor_execute", count)
    assert statements == []
