"""Users with a second factor, made over HTTP as a client would: TOTP turned on
(register, log in, `POST /users/me/mfa/totp`, `/totp/confirm`), or a passkey
registered (`POST /users/me/passkeys/options`, `POST /users/me/passkeys`).

Each costs the server password hashes (registration, the first login, TOTP's
`current_password`), so they are made a few at a time (the hasher never idles), and
the many TOTP users a run needs are copies of one, written to the database."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pyotp
from tests.support.authenticator import SoftwareAuthenticator

from authapi.config import Settings
from authapi.mfa.totp import new_secret, seal
from authapi.signing.sealing import load_key_encryption_key
from authbench import postgres
from authbench.accounts import PASSWORD
from authbench.servers import Server

STEP_SECONDS = 30  # RFC 6238's, as the server uses
CONCURRENCY = 4  # below hash_workers + hash_queue: nothing is refused
T = TypeVar("T")


@dataclass(frozen=True)
class TotpUser:
    email: str
    totp: pyotp.TOTP
    spent_step: int  # the step of the code that turned TOTP on: no login with it


def _checked(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.status_code >= 300:
        raise RuntimeError(f"{what}: {response.status_code} {response.text[:300]}")
    body: dict[str, Any] = response.json() if response.content else {}
    return body


async def _logged_in(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    """Register `email`; the bearer header of its first session."""
    _checked(await client.post("/users", json={"email": email, "password": PASSWORD}), "register")
    form = {"grant_type": "password", "username": email, "password": PASSWORD}
    tokens = _checked(await client.post("/token", data=form), "login")
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def _totp_user(client: httpx.AsyncClient, email: str) -> TotpUser:
    bearer = await _logged_in(client, email)
    body = {"current_password": PASSWORD}
    started = _checked(await client.post("/users/me/mfa/totp", json=body, headers=bearer), "totp")
    totp = pyotp.TOTP(started["secret"])
    # The previous step's code turns it on (within the accepted drift), so that the
    # current step stays unspent and the user can log in at once; sent as the step
    # ends, the server may be a step further and refuse it: then the next one.
    for _ in range(2):
        step = int(time.time()) // STEP_SECONDS - 1
        body = {"code": totp.generate_otp(step)}
        confirm = await client.post("/users/me/mfa/totp/confirm", json=body, headers=bearer)
        if confirm.status_code != 403:
            break
    _checked(confirm, "totp confirm")
    return TotpUser(email, totp, step)


async def _passkey_user(
    client: httpx.AsyncClient, email: str, origin: str
) -> SoftwareAuthenticator:
    bearer = await _logged_in(client, email)
    options = _checked(await client.post("/users/me/passkeys/options", headers=bearer), "options")
    passkey = SoftwareAuthenticator(origin)
    body = {"credential": json.dumps(passkey.register(options))}
    _checked(await client.post("/users/me/passkeys", json=body, headers=bearer), "add passkey")
    return passkey


async def _all(
    make: Callable[[httpx.AsyncClient, int], Awaitable[T]], base_url: str, count: int
) -> list[T]:
    """`make(client, n)` for n in 0..count-1, CONCURRENCY at a time; in order."""
    limits = httpx.Limits(max_connections=CONCURRENCY)
    gate = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:

        async def one(number: int) -> T:
            async with gate:
                return await make(client, number)

        return list(await asyncio.gather(*(one(number) for number in range(count))))


def totp_users(server: Server, database: str, count: int) -> list[TotpUser]:
    """`count` users with TOTP on, `totp<n>@example.com`: the first turned on over HTTP,
    the others copies of it in the database (three hashes each over HTTP would take
    minutes), each with a secret of its own, sealed as the server seals them (its KEK
    from its data directory)."""

    async def make(client: httpx.AsyncClient, number: int) -> TotpUser:
        return await _totp_user(client, "totp0@example.com")

    template = asyncio.run(_all(make, server.base_url, 1))[0]
    data_dir = Path(server.env["AUTHAPI_DATA_DIR"])
    kek = load_key_encryption_key(
        Settings(_env_file=None, data_dir=data_dir, key_encryption_key=None)
    )
    users, rows = [template], []
    for number in range(1, count):
        user_id, email, secret = (
            postgres.row_id("totp", number),
            f"totp{number}@example.com",
            new_secret(),
        )
        rows.append((user_id, email, seal(kek, user_id, secret)))
        users.append(TotpUser(email, pyotp.TOTP(secret), spent_step=-1))
    postgres.clone_totp_users(database, template.email, rows)
    return users


def passkey_users(
    base_url: str, prefix: str, count: int, origin: str
) -> list[SoftwareAuthenticator]:
    """`count` users with a passkey each (registered from `origin`); their passkeys."""

    async def make(client: httpx.AsyncClient, number: int) -> SoftwareAuthenticator:
        return await _passkey_user(client, f"{prefix}{number}@example.com", origin)

    return asyncio.run(_all(make, base_url, count))


def plain_users(base_url: str, prefix: str, count: int) -> list[str]:
    """`count` users without a second factor; their emails."""

    async def make(client: httpx.AsyncClient, number: int) -> str:
        email = f"{prefix}{number}@example.com"
        body = {"email": email, "password": PASSWORD}
        _checked(await client.post("/users", json=body), "register")
        return email

    return asyncio.run(_all(make, base_url, count))
