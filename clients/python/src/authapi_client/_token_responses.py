"""What the token endpoint's refusals mean for the session: ended, or only postponed."""

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


def session_ended(response: httpx.Response) -> bool:
    """True for `invalid_grant`: the refresh token is dead (logout, revocation, expiry).
    Every other refusal (429, 503, a proxy's 502) leaves the session as it was."""
    if response.status_code != 400:
        return False
    try:
        return bool(response.json().get("error") == "invalid_grant")
    except (ValueError, AttributeError):
        return False
