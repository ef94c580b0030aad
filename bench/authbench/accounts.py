"""Users and tokens for the scenarios: registered and logged in over HTTP, as a client
would; and the refresh tokens of bulk-inserted sessions, computed with the servers'
refresh-token secret."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from authapi.config import Settings
from authapi.sessions.rotation import RefreshTokenCodec, load_refresh_token_key
from authbench.config import REFRESH_SECRET

PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway benchmark user


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str


def _checked(response: httpx.Response, what: str) -> httpx.Response:
    if response.status_code >= 300:
        raise RuntimeError(f"{what}: {response.status_code} {response.text[:300]}")
    return response


def register(base_url: str, email: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        body = {"email": email, "password": PASSWORD}
        _checked(client.post("/users", json=body), "register")


def _login_form(email: str) -> dict[str, str]:
    return {"grant_type": "password", "username": email, "password": PASSWORD}


def login(base_url: str, email: str) -> Tokens:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        body = _checked(client.post("/token", data=_login_form(email)), "login").json()
        return Tokens(body["access_token"], body["refresh_token"])


def _concurrently(
    base_url: str, count: int, send: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]
) -> list[httpx.Response]:
    """`count` requests at once, each on its own connection."""

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=count)
        async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:
            return list(await asyncio.gather(*(send(client) for _ in range(count))))

    return asyncio.run(run())


def login_many(base_url: str, email: str, count: int) -> list[Tokens]:
    """`count` sessions of one user, logged in concurrently (the server's hasher takes
    them as fast as it can)."""
    responses = _concurrently(
        base_url, count, lambda client: client.post("/token", data=_login_form(email))
    )
    bodies = [_checked(response, "login").json() for response in responses]
    return [Tokens(body["access_token"], body["refresh_token"]) for body in bodies]


def simplejwt_logins(base_url: str, username: str, count: int) -> list[Tokens]:
    """`count` token pairs from simplejwt's `TokenObtainPairView`, asked for at once."""
    body = {"username": username, "password": PASSWORD}
    responses = _concurrently(base_url, count, lambda client: client.post("/api/token/", json=body))
    pairs = [_checked(response, "simplejwt login").json() for response in responses]
    return [Tokens(pair["access"], pair["refresh"]) for pair in pairs]


def peer_access_token(base_url: str, email: str) -> str:
    """Register with the fastapi-users app and log in through its JWT backend."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        body = {"email": email, "password": PASSWORD}
        _checked(client.post("/auth/register", json=body), "peer register")
        form = {"username": email, "password": PASSWORD}
        response = _checked(client.post("/auth/jwt/login", data=form), "peer login")
        token: str = response.json()["access_token"]
        return token


def refresh_codec() -> RefreshTokenCodec:
    """Encodes refresh tokens exactly as the bench servers do (same secret)."""
    settings = Settings(
        _env_file=None,
        refresh_token_secret=REFRESH_SECRET,
        data_dir=Path("/nonexistent"),
    )
    return RefreshTokenCodec(load_refresh_token_key(settings))
