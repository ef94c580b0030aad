"""What a request raises when the token endpoint will not give it an access token.

    AuthapiError            the token endpoint refused (wrong password, disabled user, ...)
    ├── AuthapiMfaRequired  the password was right, and the account needs a second factor
    └── AuthapiUnavailable  it asked to wait (429, 503) and no valid access token is left

A refusal of the API itself (a 403, a 404) is not an exception: it is the response.
"""

from __future__ import annotations

import httpx


class AuthapiError(Exception):
    """The token endpoint refused: wrong credentials, a disabled user, ...

    `response` is the token endpoint's answer, when there was one."""

    def __init__(self, message: str, response: httpx.Response | None = None) -> None:
        super().__init__(message)
        self.response = response

    @classmethod
    def refused(cls, action: str, response: httpx.Response) -> AuthapiError:
        try:
            body = response.json()
            detail = f"{body.get('error')}: {body.get('error_description')}"
        except ValueError:
            detail = response.text[:200]
        return cls(f"{action} refused ({response.status_code}) {detail}", response)


class AuthapiMfaRequired(AuthapiError):
    """The password was right, but the account has a second factor and there is no `otp`
    callback to give a code (or the account has only passkeys, which need a browser).
    `mfa_methods` are the server's: "totp", "recovery_code", "passkey"."""

    def __init__(self, mfa_methods: list[str], response: httpx.Response) -> None:
        super().__init__(
            "login needs a second factor (" + ", ".join(mfa_methods) + "): pass `otp`",
            response,
        )
        self.mfa_methods = mfa_methods


class AuthapiUnavailable(AuthapiError):
    """The token endpoint asked us to wait (429 rate limited, 503 unavailable) and there
    is no valid access token meanwhile. The session is kept: once `retry_after` seconds
    have passed, the next request refreshes it (no new login)."""

    def __init__(
        self, retry_after: float, response: httpx.Response | None = None, action: str = "refresh"
    ) -> None:
        super().__init__(
            f"{action} postponed: the token endpoint asked to retry in {retry_after:.0f} s",
            response,
        )
        self.retry_after = retry_after
