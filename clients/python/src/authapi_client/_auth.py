"""`AuthapiAuth`: an httpx authentication flow for Python services and scripts.

    auth = AuthapiAuth("https://auth.example/token", username="svc@example.com", password=...)
    with httpx.Client(auth=auth) as http:          # or httpx.AsyncClient(auth=auth)
        http.get("https://api.example/things")

It logs in with the password grant on first use, sends the access token as a bearer
token, refreshes it (rotating the refresh token) shortly before it expires or once
after a 401, and logs in again only when the session has ended (`invalid_grant`). For
an account with a second factor, the login's second step (the MFA grant) takes its code
from the `otp` callback. A refresh answered 429 or 503 keeps the session: the access
token is used while it is valid, and the token endpoint is not asked again before its
`Retry-After`; with no valid token meanwhile, the request raises `AuthapiUnavailable`.
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

from authapi_client._errors import AuthapiError, AuthapiMfaRequired, AuthapiUnavailable
from authapi_client._token_responses import (
    WAIT_STATUSES,
    mfa_required,
    retry_after,
    session_ended,
)

# The exchange of one token request: yields the request, receives its response.
TokenFlow = Generator[httpx.Request, httpx.Response, None]

# A refresh starts at most this fraction of the lifetime before expiry, so that a short
# access-token TTL (at or below the margin) does not mean a refresh before every request.
MARGIN_FRACTION = 0.25

MFA_GRANT = "urn:authapi:params:oauth:grant-type:mfa"
# What `otp` can answer: a TOTP code or a recovery code (the contract's `mfa_methods`).
CODE_METHODS = frozenset({"totp", "recovery_code"})


@dataclass(frozen=True)
class _Tokens:
    access: str
    refresh: str
    expires_at: float  # on the auth's clock
    refresh_at: float  # from then on a request refreshes first


class AuthapiAuth(httpx.Auth):
    """Bearer tokens from authapi for every request of an `httpx.Client` or
    `httpx.AsyncClient`, the same instance shared by all of a service's requests.

    `token_url` is authapi's `POST /token`; `username` and `password` are the account's.
    `otp`, for an account with a second factor, is called at each login that needs one
    and returns a TOTP code (or a recovery code); without it such a login raises
    `AuthapiMfaRequired`. It runs while the login holds the auth's lock (every other
    request waits for the login anyway), in the calling thread: an async service gives a
    callback that returns at once, e.g. `lambda: pyotp.TOTP(secret).now()`.
    `scope`, when given, is asked for at login and refresh (default: the server's).
    `refresh_margin` is how many seconds before expiry a request refreshes first (at
    most a quarter of the token's lifetime). `clock` measures that time; tests pass a
    clock of their own.
    """

    def __init__(
        self,
        token_url: str,
        *,
        username: str,
        password: str,
        otp: Callable[[], str] | None = None,
        scope: str | None = None,
        refresh_margin: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token_url = token_url
        self._credentials = {"username": username, "password": password}
        self._otp = otp
        self._scope = scope
        self._margin = refresh_margin
        self._clock = clock
        self._tokens: _Tokens | None = None
        # After a 429 or 503, the token endpoint is not asked again before this time.
        self._not_before = 0.0
        self._thread_lock = threading.Lock()
        self._task_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def access_token(self) -> str | None:
        """The current access token, None before the first login."""
        return self._tokens.access if self._tokens else None

    # -- the flow, shared by both clients -----------------------------------------

    def _token_request(self, form: dict[str, str]) -> httpx.Request:
        if self._scope:
            form = {**form, "scope": self._scope}
        return httpx.Request("POST", self.token_url, data=form)

    def _store(self, response: httpx.Response) -> None:
        body: dict[str, Any] = response.json()
        now = self._clock()
        lifetime = float(body["expires_in"])
        margin = min(self._margin, lifetime * MARGIN_FRACTION)
        self._tokens = _Tokens(
            access=body["access_token"],
            refresh=body["refresh_token"],
            expires_at=now + lifetime,
            refresh_at=now + lifetime - margin,
        )

    def _postpone(self, response: httpx.Response) -> None:
        """Remember a 429's or 503's Retry-After, so no request asks again before then."""
        if response.status_code in WAIT_STATUSES:
            self._not_before = self._clock() + retry_after(response)

    def _waiting(self, action: str) -> AuthapiUnavailable | None:
        wait = self._not_before - self._clock()
        return AuthapiUnavailable(wait, action=action) if wait > 0 else None

    def _renew(self, rejected: str | None) -> TokenFlow:
        """Make sure there is a usable access token. `rejected` is the token a 401 came
        back for: if another caller has replaced it meanwhile, that one is used."""
        tokens = self._tokens
        if tokens is not None:
            if rejected is not None and tokens.access != rejected:
                return
            now = self._clock()
            # A token not yet expired still works while a refresh has to wait.
            usable = rejected is None and now < tokens.expires_at
            if usable and (now < tokens.refresh_at or now < self._not_before):
                return
            if waiting := self._waiting("refresh"):
                raise waiting
            response = yield self._token_request(
                {"grant_type": "refresh_token", "refresh_token": tokens.refresh}
            )
            if response.status_code == 200:
                self._store(response)
                return
            if not session_ended(response):
                # Keep the session: logging in again would lose it, cost the server a
                # password hash and, against a rate limit, be refused just the same.
                self._postpone(response)
                if usable:
                    return
                if response.status_code in WAIT_STATUSES:
                    raise AuthapiUnavailable(retry_after(response), response)
                raise AuthapiError.refused("refresh", response)
            self._tokens = None  # invalid_grant: the session has ended, log in again
        if waiting := self._waiting("login"):
            raise waiting
        response = yield self._token_request({"grant_type": "password", **self._credentials})
        if (methods := mfa_required(response)) is not None:
            response = yield self._second_factor(response, methods)
        if response.status_code == 200:
            self._store(response)
            return
        self._postpone(response)
        if response.status_code in WAIT_STATUSES:
            raise AuthapiUnavailable(retry_after(response), response, action="login")
        raise AuthapiError.refused("login", response)

    def _second_factor(self, response: httpx.Response, methods: list[str]) -> httpx.Request:
        """The MFA grant after a right password: the `mfa_token` of `response` and a code
        from the `otp` callback (an account with only a passkey cannot log in here)."""
        if self._otp is None or not CODE_METHODS.intersection(methods):
            raise AuthapiMfaRequired(methods, response)
        form = {"grant_type": MFA_GRANT, "mfa_token": response.json()["mfa_token"]}
        return self._token_request({**form, "otp": self._otp()})

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
