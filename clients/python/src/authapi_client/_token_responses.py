"""What the token endpoint's refusals mean for the session: ended, only postponed, or
waiting for a second factor."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

# Answers that ask the client to come back later; nothing is wrong with the session.
WAIT_STATUSES = frozenset({429, 503})
DEFAULT_RETRY_AFTER = 1.0


def retry_after(response: httpx.Response) -> float:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date, RFC 9110 10.2.3)."""
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_body(response: httpx.Response) -> dict[str, object]:
    """The JSON error body of a 400, or {} (another status, or not our body: a proxy's)."""
    if response.status_code != 400:
        return {}
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def session_ended(response: httpx.Response) -> bool:
    """True for `invalid_grant`: the refresh token is dead (logout, revocation, expiry).
    Every other refusal (429, 503, a proxy's 502) leaves the session as it was."""
    return _error_body(response).get("error") == "invalid_grant"


def mfa_required(response: httpx.Response) -> list[str] | None:
    """The `mfa_methods` of a password grant answered `mfa_required` (the password was
    right; a second factor must follow with its `mfa_token`), else None."""
    body = _error_body(response)
    if body.get("error") != "mfa_required" or not isinstance(body.get("mfa_token"), str):
        return None
    methods = body.get("mfa_methods")
    return [str(m) for m in methods] if isinstance(methods, list) else []
