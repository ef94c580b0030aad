"""Turning TOTP on as a client would, and codes from the test's own authenticator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pyotp

from tests.support.clock import FakeClock
from tests.support.factories import PASSWORD, bearer


@dataclass
class Totp:
    secret: str
    recovery_codes: list[str]

    def code(self, clock: FakeClock, steps: int = 0) -> str:
        """The code of the step `steps` away from the app's clock."""
        return pyotp.TOTP(self.secret).at(clock.now(), counter_offset=steps)


def at_step_start(clock: FakeClock) -> None:
    """Move the app's clock back to one second into its current 30-second step (never
    forward: a token issued in the future would not verify yet), so that the step
    cannot change under the test for 29 seconds."""
    seconds = clock.now().timestamp()
    target = (seconds - 1) // 30 * 30 + 1
    clock.advance(target - seconds)


async def start_totp(client: httpx.AsyncClient, tokens: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(
        "/users/me/mfa/totp", json={"current_password": PASSWORD}, headers=bearer(tokens)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def enable_totp(client: httpx.AsyncClient, tokens: dict[str, Any], clock: FakeClock) -> Totp:
    """TOTP turned on for the tokens' user, with the code of the step before the
    current one spent (so the current step's code is still unused)."""
    at_step_start(clock)
    secret = (await start_totp(client, tokens))["secret"]
    response = await client.post(
        "/users/me/mfa/totp/confirm",
        json={"code": pyotp.TOTP(secret).at(clock.now(), counter_offset=-1)},
        headers=bearer(tokens),
    )
    assert response.status_code == 200, response.text
    return Totp(secret, response.json()["recovery_codes"])


async def new_recovery_codes(
    client: httpx.AsyncClient, tokens: dict[str, Any], otp: str | None
) -> httpx.Response:
    """The step-up endpoint the code tests use: POST /users/me/mfa/recovery-codes."""
    body = {"current_password": PASSWORD, **({"otp": otp} if otp is not None else {})}
    return await client.post("/users/me/mfa/recovery-codes", json=body, headers=bearer(tokens))
