"""The domain errors: what a service raises when it refuses, each with its status and code.

One handler answers them all with the contract's JSON body (error_bodies.py makes it;
nothing the client sent is echoed back).

The domain errors, with their status and `error` code. A service raises them; one
handler answers them all. Those marked (kept) are `db.KeepsChanges` as well: their
request's transaction commits what it did (a revoked session, an audit record) before
the refusal goes out.

* DomainError                       400 invalid_request
  + InvalidRequest                  400 invalid_request
  | + PasskeyNotRegistered (kept)   400 invalid_request, a registration refused, its challenge used
  + InvalidGrant                    400 invalid_grant
  | + RefreshTokenReused (kept)     400 invalid_grant, the session revoked
  | + LoginFailed (kept)            400 invalid_grant, recorded in the audit trail
  | + EmailNotVerified (kept)       400 invalid_grant, AUTHAPI_REQUIRE_VERIFIED_EMAIL
  | + PasskeyRefused (kept)         400 invalid_grant, an assertion refused, its challenge used
  | + SecondFactorRefused (kept)    400 invalid_grant, the MFA grant's attempt counted
  + MfaRequired (kept)              400 mfa_required, with mfa_token and mfa_methods
  + UnsupportedGrantType            400 unsupported_grant_type
  + InvalidScope                    400 invalid_scope
  + WrongPassword                   403 invalid_credentials, a wrong current password
  | + WrongCode (kept)              403 invalid_credentials, a wrong second factor, counted
  + StepUpRequired                  403 mfa_required, a change that needs a second factor too
  + TotpState                       409 totp_state, TOTP enrolment in the wrong state
  + InvalidMailToken (kept)         400 invalid_token, a mailed link's token, recorded
  + AuthenticationRequired          401 invalid_token, `WWW-Authenticate: Bearer`
  | + InvalidToken                  401 invalid_token, with `error="invalid_token"`
  + Forbidden                       403 insufficient_role
  + CsrfRejected (oauth/browser.py) 403 csrf_rejected
  + NotFound                        404 not_found
  | + PasskeysUnavailable           404 not_found, no relying party (an IP address as RP ID)
  + EmailTaken                      409 email_taken
  + PasskeyTaken                    409 passkey_registered
  + OwnAccountChange                409 own_account
  | + LastAdmin                     409 own_account, the last active admin's deletion
  + AccountDisabled                 409 account_disabled, an admin's reset mail for one
  + RateLimited                     429 too_many_requests, `Retry-After`
  | + AccountThrottled (kept)       429 too_many_requests, recorded in the audit trail
  + ServiceUnavailable              503 temporarily_unavailable, `Retry-After: 1`
    + HashingBusy                   503 temporarily_unavailable

Errors from elsewhere get the same body: a request that does not validate (422, or 400
invalid_request on the token endpoints), Starlette's HTTP errors (an unknown path, a
wrong method, a body cut off at the size limit), a database that is down (503), and
anything unexpected (500 server_error, logged): error_handlers.py answers each.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import exc as sa_exc

from authapi.db import KeepsChanges


class DomainError(Exception):
    status_code = 400
    error = "invalid_request"
    description = "The request is invalid."

    def __init__(self, description: str | None = None) -> None:
        super().__init__(description or self.description)
        self.error_description = description or self.description

    def headers(self) -> dict[str, str]:
        return {}

    def extra(self) -> dict[str, Any]:
        """Members of the body beyond `error` and `error_description` (MfaRequired's)."""
        return {}


class InvalidRequest(DomainError):
    pass


class InvalidGrant(DomainError):
    error = "invalid_grant"
    description = "The credentials or the refresh token are invalid, expired or revoked."


class RefreshTokenReused(InvalidGrant, KeepsChanges):
    """A rotated refresh token came back after the grace window: its session is revoked."""

    def __init__(self, user_id: uuid.UUID) -> None:
        super().__init__()
        self.user_id = user_id


class LoginFailed(InvalidGrant, KeepsChanges):
    """A wrong password, unknown email or disabled user: refused, and recorded in the
    audit trail (`user_id` is None for an unknown email)."""

    description = "Invalid email or password."

    def __init__(self, user_id: uuid.UUID | None) -> None:
        super().__init__()
        self.user_id = user_id


class EmailNotVerified(InvalidGrant, KeepsChanges):
    """The right password, for an account whose address is not verified while
    AUTHAPI_REQUIRE_VERIFIED_EMAIL is on: refused, and recorded in the audit trail."""

    description = "The email address is not verified yet: open the link mailed to it."


class PasskeyRefused(InvalidGrant, KeepsChanges):
    """A passkey assertion that does not verify (unknown credential, used or foreign
    challenge, wrong origin or signature, a counter gone backwards). Kept: its
    challenge stays used, and the audit record of a counter gone backwards stays."""

    description = "The passkey could not be verified."


class SecondFactorRefused(InvalidGrant, KeepsChanges):
    """A wrong second factor, or an mfa_token whose user is gone or disabled: kept, the
    attempt counted on the mfa_token and the audit record."""

    description = "The mfa_token or the second factor is invalid, expired or used up."


class MfaRequired(DomainError, KeepsChanges):
    """The right password for an account with a second factor: no session yet, but an
    `mfa_token` for the MFA grant. Kept: the token's row and the audit record."""

    error = "mfa_required"
    description = "A second factor is required: use the mfa_token with the MFA grant."

    def __init__(self, mfa_token: str, mfa_methods: list[str]) -> None:
        super().__init__()
        self.mfa_token = mfa_token
        self.mfa_methods = mfa_methods

    def extra(self) -> dict[str, Any]:
        return {"mfa_token": self.mfa_token, "mfa_methods": self.mfa_methods}


class UnsupportedGrantType(DomainError):
    error = "unsupported_grant_type"
    description = (
        "grant_type must be 'password', 'refresh_token', "
        "'urn:authapi:params:oauth:grant-type:mfa' or "
        "'urn:authapi:params:oauth:grant-type:passkey'."
    )


class InvalidScope(DomainError):
    error = "invalid_scope"
    description = "The requested scope is unknown or exceeds the granted scope."


class AuthenticationRequired(DomainError):
    """No access token was sent (RFC 6750 §3.1: no error code in the challenge)."""

    status_code = 401
    error = "invalid_token"
    description = "An access token is required."

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class InvalidToken(AuthenticationRequired):
    description = "The access token is invalid or expired."

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class InvalidMailToken(DomainError, KeepsChanges):
    """A token from a mailed link that is unknown, used, expired, voided by a newer one,
    or bound to an account state that has changed: 400, unlike InvalidToken's 401 (the
    request's own credentials are not in question). Kept: the refusal's audit row
    (account/refused_links.py), and the deletion of a token found stale."""

    error = "invalid_token"
    description = "The link is invalid, used, expired or replaced by a newer one."


class Forbidden(DomainError):
    status_code = 403
    error = "insufficient_role"
    description = "Your role does not allow this."


class NotFound(DomainError):
    status_code = 404
    error = "not_found"
    description = "No such resource."


class PasskeysUnavailable(NotFound):
    """No WebAuthn relying party: the RP ID would be an IP address (passkeys/relying_party.py)."""

    description = "Passkeys are not available: the server has no AUTHAPI_WEBAUTHN_RP_ID."


class PasskeyNotRegistered(InvalidRequest, KeepsChanges):
    """A registration that does not verify; kept: its challenge stays used."""

    description = "The passkey's registration could not be verified; ask for new options."


class PasskeyTaken(DomainError):
    status_code = 409
    error = "passkey_registered"
    description = "This passkey is already registered."


class EmailTaken(DomainError):
    status_code = 409
    error = "email_taken"
    description = "An account with this email address already exists."


class OwnAccountChange(DomainError):
    """An admin tried to disable their own account or change their own role."""

    status_code = 409
    error = "own_account"
    description = "Admins cannot disable their own account or change their own role."


class LastAdmin(OwnAccountChange):
    """The last active admin asked to delete their account: nobody could administer the
    service after it (account/deletion.py)."""

    description = "The last active admin cannot delete their account; make another admin first."


class WrongPassword(DomainError):
    """The current password, asked again before a sensitive change, is wrong."""

    status_code = 403
    error = "invalid_credentials"
    description = "The current password is wrong."


class WrongCode(WrongPassword, KeepsChanges):
    """A wrong second factor (TOTP or recovery code, passkey assertion) (kept: the
    attempt and the failure count stay counted). On /token it is invalid_grant."""

    description = "The second factor is wrong."


class StepUpRequired(DomainError):
    """A sensitive change of a user with a second factor came with the password only."""

    status_code = 403
    error = "mfa_required"
    description = (
        "This change needs a second factor too: `otp` (a TOTP or recovery code) or `passkey`."
    )


class TotpState(DomainError):
    """TOTP enrolment asked in the wrong state: already on, or nothing to confirm."""

    status_code = 409
    error = "totp_state"
    description = "TOTP is already on."


class AccountDisabled(DomainError):
    """An admin asked for a reset link for a disabled account, whose link would be
    refused: enable the account first."""

    status_code = 409
    error = "account_disabled"
    description = "The account is disabled; enable it first."


class RateLimited(DomainError):
    status_code = 429
    error = "too_many_requests"
    description = "Too many requests; retry after the time in Retry-After."

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class AccountThrottled(RateLimited, KeepsChanges):
    """Too many password attempts on one account; refused, and recorded in the audit
    trail. `limit` names the limit that refused (its metric label)."""

    def __init__(self, retry_after: int, limit: str) -> None:
        super().__init__(retry_after)
        self.limit = limit


class ServiceUnavailable(DomainError):
    """Overloaded, or a backing service (database, rate-limit storage) is down."""

    status_code = 503
    error = "temporarily_unavailable"  # the RFC 6749 §5.2 code for this
    description = "The service is busy or a backing service is down; try again shortly."

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class HashingBusy(ServiceUnavailable):
    """Every password-hashing place is taken (users/passwords.py says why it is bounded)."""

    description = "Too many logins at once; try again shortly."


DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    sa_exc.DisconnectionError,
    # asyncpg reports a server that went away mid-request (connection closed, session
    # terminated, "the database system is shutting down") as a bare DBAPIError, marked
    # `connection_invalidated` (db.create_engine makes sure of it).
    sa_exc.DBAPIError,
    ConnectionError,
    TimeoutError,
    OSError,
)
