"""The three logins of the `mfa` scenario, each a closed-loop client on a lean
keep-alive connection (authbench/httpload.py): the password grant of a user without a
second factor; a TOTP user's two steps (the password grant answering 400
`mfa_required`, then the MFA grant with the code); and a passwordless passkey login
(`POST /passkeys/options`, then the passkey grant)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from tests.support.authenticator import SoftwareAuthenticator

from authbench.accounts import PASSWORD
from authbench.factors import STEP_SECONDS, TotpUser
from authbench.httpload import Connection, HttpError
from authbench.refreshing import JSON, address

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
MFA_GRANT = "urn:authapi:params:oauth:grant-type:mfa"
PASSKEY_GRANT = "urn:authapi:params:oauth:grant-type:passkey"


async def _post(
    connection: Connection, path: str, body: bytes, headers: Mapping[str, str], expect: int
) -> dict[str, Any]:
    status, answer = await connection.request("POST", path, body, headers)
    if status != expect:
        raise HttpError(f"POST {path}: {status} (expected {expect}) {answer[:300]!r}")
    found: dict[str, Any] = json.loads(answer)
    return found


def _password_form(email: str) -> bytes:
    return urlencode({"grant_type": "password", "username": email, "password": PASSWORD}).encode()


class TotpPool:
    """TOTP users handed out so that none is used twice in one 30 s step: the server
    accepts each step's code once per account. A user is lent with the step whose code
    it is to send (sent a moment later, in the next step, it is still within the
    server's drift), so the pool knows what the server will have spent."""

    def __init__(self, users: Sequence[TotpUser], clock: Callable[[], float] = time.time) -> None:
        self.users = list(users)
        self.clock = clock  # Unix time, as the server's steps count it
        self.spent = [user.spent_step for user in self.users]  # the last step each was lent for
        self.next = 0
        self.lent = 0

    def take(self) -> tuple[TotpUser, int]:
        step = int(self.clock()) // STEP_SECONDS
        for _ in range(len(self.users)):
            number = self.next
            self.next = (self.next + 1) % len(self.users)
            if self.spent[number] < step:
                self.spent[number] = step
                self.lent += 1
                return self.users[number], step
        raise RuntimeError(
            f"all {len(self.users)} TOTP users logged in within this 30 s step: "
            "make more (BenchConfig.mfa_users)"
        )


class LoginClient:
    """One client: its keep-alive connection, and `step`, one login on it."""

    def __init__(self, base_url: str) -> None:
        self.connection = Connection(*address(base_url))

    async def step(self) -> Mapping[str, float] | None:
        raise NotImplementedError


class PasswordLogin(LoginClient):
    """A password grant of a user without a second factor: 200 and tokens."""

    def __init__(self, base_url: str, email: str) -> None:
        super().__init__(base_url)
        self.body = _password_form(email)

    async def step(self) -> None:
        await _post(self.connection, "/token", self.body, FORM, 200)


class TwoStepLogin(LoginClient):
    """A TOTP user's login: the password grant (400 `mfa_required` with an
    `mfa_token`), then the MFA grant with the code. Returns the MFA grant's seconds
    as the part "mfa"."""

    def __init__(self, base_url: str, pool: TotpPool) -> None:
        super().__init__(base_url)
        self.pool = pool

    async def step(self) -> dict[str, float]:
        user, step = self.pool.take()
        refused = await _post(self.connection, "/token", _password_form(user.email), FORM, 400)
        if refused.get("error") != "mfa_required":
            raise HttpError(f"password grant of a TOTP user: {refused}")
        form = {
            "grant_type": MFA_GRANT,
            "mfa_token": refused["mfa_token"],
            "otp": user.totp.generate_otp(step),
        }
        began = time.perf_counter()
        await _post(self.connection, "/token", urlencode(form).encode(), FORM, 200)
        return {"mfa": time.perf_counter() - began}


class PasskeyLogin(LoginClient):
    """A passwordless login: request options, then the passkey grant with the
    assertion signed over their challenge."""

    def __init__(self, base_url: str, passkey: SoftwareAuthenticator) -> None:
        super().__init__(base_url)
        self.passkey = passkey

    async def step(self) -> None:
        options = await _post(self.connection, "/passkeys/options", b"{}", JSON, 200)
        assertion = json.dumps(self.passkey.sign_in(options))
        form = urlencode({"grant_type": PASSKEY_GRANT, "credential": assertion}).encode()
        await _post(self.connection, "/token", form, FORM, 200)
