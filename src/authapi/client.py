"""`AuthapiAuth`: an httpx authentication flow for Python services and scripts.

    auth = AuthapiAuth("https://auth.example/token", username="svc@example.com", password=...)
    with httpx.Client(auth=auth) as http:          # or httpx.AsyncClient(auth=auth)
        http.get("https://api.example/things")

It logs in with the password grant on first use, sends the access token as a bearer
token, refreshes it (rotating the refresh token) shortly before it expires or once
after a 401, and falls back to logging in again when the refresh token is refused.
Refreshes are single-flight: however many requests run at once, in threads or tasks,
one of them refreshes and the others wait for its result.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from typing import Any

import httpx

# The exchange of one token request: yields the request, receives its response.
TokenFlow = Generator[httpx.Request, httpx.Response, None]


class AuthapiError(Exception):
    """The token endpoint refused to log in: wrong credentials, disabled user, ..."""

    def __init__(self, response: httpx.Response) -> None:
        try:
            body = response.json()
            detail = f"{body.get('error')}: {body.get('error_description')}"
        except ValueError:
            detail = response.text[:200]
        super().__init__(f"login refused ({response.status_code}) {detail}")
        self.response = response


@dataclass(frozen=True)
class _Tokens:
    access: str
    refresh: str
    expires_at: float  # on the auth's clock


class AuthapiAuth(httpx.Auth):
    def __init__(
        self,
        token_url: str,
        *,
        username: str,
        password: str,
        scope: str | None = None,
        refresh_margin: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token_url = token_url
        self._credentials = {"username": username, "password": password}
        self._scope = scope
        self._margin = refresh_margin
        self._clock = clock
        self._tokens: _Tokens | None = None
        self._thread_lock = threading.Lock()
        self._task_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def access_token(self) -> str | None:
        return self._tokens.access if self._tokens else None

    # -- the flow, shared by both clients -----------------------------------------

    def _token_request(self, form: dict[str, str]) -> httpx.Request:
        if self._scope:
            form = {**form, "scope": self._scope}
        return httpx.Request("POST", self.token_url, data=form)

    def _store(self, response: httpx.Response) -> None:
        body: dict[str, Any] = response.json()
        self._tokens = _Tokens(
            access=body["access_token"],
            refresh=body["refresh_token"],
            expires_at=self._clock() + float(body["expires_in"]),
        )

    def _renew(self, rejected: str | None) -> TokenFlow:
        """Make sure there is a usable access token. `rejected` is the token a 401 came
        back for: if another caller has replaced it meanwhile, that one is used."""
        tokens = self._tokens
        if tokens is not None:
            replaced = rejected is not None and tokens.access != rejected
            fresh = rejected is None and self._clock() < tokens.expires_at - self._margin
            if replaced or fresh:
                return
            response = yield self._token_request(
                {"grant_type": "refresh_token", "refresh_token": tokens.refresh}
            )
            if response.status_code == 200:
                self._store(response)
                return
            self._tokens = None  # refresh refused (session ended): log in again
        response = yield self._token_request({"grant_type": "password", **self._credentials})
        if response.status_code != 200:
            raise AuthapiError(response)
        self._store(response)

    def _authorize(self, request: httpx.Request) -> str:
        assert self._tokens is not None  # noqa: S101 - _renew always leaves tokens
        request.headers["Authorization"] = f"Bearer {self._tokens.access}"
        return self._tokens.access

    # -- httpx.Client and httpx.AsyncClient -------------------------------------------
    # The same steps; only the lock differs. A request is sent at most twice: once, and
    # again after a 401 with a renewed token.

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        rejected: str | None = None
        for _ in range(2):
            with self._thread_lock:
                flow = self._renew(rejected)
                try:
                    token_request = next(flow)
                    while True:
                        token_response = yield token_request
                        token_response.read()
                        token_request = flow.send(token_response)
                except StopIteration:
                    pass
                sent = self._authorize(request)
            response = yield request
            if response.status_code != 401:
                return
            rejected = sent

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        rejected: str | None = None
        for _ in range(2):
            async with self._task_lock():
                flow = self._renew(rejected)
                try:
                    token_request = next(flow)
                    while True:
                        token_response = yield token_request
                        await token_response.aread()
                        token_request = flow.send(token_response)
                except StopIteration:
                    pass
                sent = self._authorize(request)
            response = yield request
            if response.status_code != 401:
                return
            rejected = sent

    def _task_lock(self) -> asyncio.Lock:
        # One lock per event loop: an asyncio.Lock belongs to the loop it is used on.
        loop = asyncio.get_running_loop()
        return self._task_locks.setdefault(loop, asyncio.Lock())
