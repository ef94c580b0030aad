"""A stand-in for authapi's token endpoint and one protected route, in process
(`httpx.MockTransport`), so that the client's tests need neither a server nor a
database. It keeps to the contract the client relies on: the password and refresh_token
grants, refresh-token rotation, `invalid_grant` for a dead session, 401 for a bad
bearer token, and, for an account with a second factor, `mfa_required` and the MFA
grant. The tests against the real server are in the server's suite
(tests/client/test_against_server.py)."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import httpx

TOKEN_URL = "https://auth.example.com/token"
ME_URL = "https://auth.example.com/users/me"
EMAIL = "svc@example.com"
PASSWORD = "correct horse battery staple"  # noqa: S105 - the stand-in's only account
CODE = "123456"  # the account's one right code, when it has a second factor
MFA_GRANT = "urn:authapi:params:oauth:grant-type:mfa"


@dataclass
class Refusal:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, str] = field(default_factory=lambda: {"error": "temporarily_unavailable"})
    grant_type: str | None = None  # refuse the next request of this grant only


class FakeAuthapi:
    def __init__(self, expires_in: int = 300, mfa_methods: list[str] | None = None) -> None:
        self.expires_in = expires_in
        # With methods, a right password answers mfa_required, and CODE is the factor.
        self.mfa_methods = mfa_methods
        self._mfa_tokens: set[str] = set()
        # The grant_type of every token request, in order, and the scope each asked for.
        self.grants: list[str] = []
        self.scopes: list[str | None] = []
        self._refresh_tokens: set[str] = set()  # the current one of each session
        self._access_tokens: set[str] = set()
        self._refusals: list[Refusal] = []
        self._lock = threading.Lock()  # the sync client calls from several threads
        self.transport = httpx.MockTransport(self.handle)

    def refuse_next_token_request(self, refusal: Refusal) -> None:
        self._refusals.append(refusal)

    def revoke_access_tokens(self) -> None:
        """Every access token issued so far is refused (401) from now on."""
        with self._lock:
            self._access_tokens.clear()

    def end_sessions(self) -> None:
        """Log out everywhere: every refresh token is dead (`invalid_grant`)."""
        with self._lock:
            self._refresh_tokens.clear()

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            if request.url == TOKEN_URL and request.method == "POST":
                return self._token(dict(parse_qsl(request.content.decode())))
            if request.url == ME_URL:
                return self._me(request)
            return httpx.Response(404, json={"detail": "Not Found"})

    def _token(self, form: dict[str, str]) -> httpx.Response:
        self.grants.append(form["grant_type"])
        self.scopes.append(form.get("scope"))
        for refusal in self._refusals:
            if refusal.grant_type in (None, form["grant_type"]):
                self._refusals.remove(refusal)
                return httpx.Response(refusal.status, headers=refusal.headers, json=refusal.body)
        if form["grant_type"] == "password":
            if (form.get("username"), form.get("password")) != (EMAIL, PASSWORD):
                return invalid_grant("wrong email or password")
            if self.mfa_methods:
                mfa_token = secrets.token_urlsafe()
                self._mfa_tokens.add(mfa_token)
                required = {"error": "mfa_required", "error_description": "a second factor"}
                return httpx.Response(
                    400, json={**required, "mfa_token": mfa_token, "mfa_methods": self.mfa_methods}
                )
        elif form["grant_type"] == MFA_GRANT:
            if form.get("mfa_token") not in self._mfa_tokens or form.get("otp") != CODE:
                return invalid_grant("wrong code")
            self._mfa_tokens.remove(form["mfa_token"])
        elif form["grant_type"] == "refresh_token":
            refresh_token = form.get("refresh_token", "")
            if refresh_token not in self._refresh_tokens:
                return invalid_grant("the session has ended")
            self._refresh_tokens.remove(refresh_token)  # rotation: each is good once
        else:
            return httpx.Response(400, json={"error": "unsupported_grant_type"})
        access, refresh = secrets.token_urlsafe(), secrets.token_urlsafe()
        self._access_tokens.add(access)
        self._refresh_tokens.add(refresh)
        body = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": refresh,
        }
        return httpx.Response(200, json=body)

    def _me(self, request: httpx.Request) -> httpx.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or token not in self._access_tokens:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return httpx.Response(200, json={"email": EMAIL})


def invalid_grant(description: str) -> httpx.Response:
    return httpx.Response(400, json={"error": "invalid_grant", "error_description": description})


class FakeMonotonic:
    """The auth's clock, moved by the test instead of by waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
