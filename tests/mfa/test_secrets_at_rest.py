"""Nothing in a database dump gives a TOTP secret or a recovery code away."""

from __future__ import annotations

import base64

import httpx
from sqlalchemy import text

from authapi.context import AppContext
from authapi.db import Base
from tests.mfa.helpers import enable_totp
from tests.support.clock import FakeClock
from tests.support.factories import registered_login


async def dump(context: AppContext) -> str:
    """Every row of every table, as text (bytes as hex and as they are)."""
    parts = []
    async with context.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in await connection.execute(text(f'SELECT * FROM "{table.name}"')):  # noqa: S608
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        raw = bytes(value)
                        parts += [raw.hex(), raw.decode("latin-1")]
                    else:
                        parts.append(str(value))
    return "\n".join(parts)


class TestSecretsAtRest:
    async def test_no_totp_secret_or_recovery_code_in_the_database(
        self, client: httpx.AsyncClient, clock: FakeClock, context: AppContext
    ) -> None:
        _, tokens = await registered_login(client)
        totp = await enable_totp(client, tokens, clock)
        stored = (await dump(context)).lower()
        raw_secret = base64.b32decode(totp.secret)
        assert totp.secret.lower() not in stored
        assert raw_secret.hex() not in stored
        assert raw_secret.decode("latin-1").lower() not in stored
        for code in totp.recovery_codes:
            assert code not in stored
            assert code.replace("-", "") not in stored
