"""How a login was made: RFC 8176 authentication method references, the `amr` claim of
every access token (kept by the session, so a refresh keeps the login's methods)."""

from __future__ import annotations

PASSWORD = "pwd"  # noqa: S105 - a method's name, not a password
ONE_TIME_CODE = "otp"  # a TOTP or a recovery code
HARDWARE_KEY = "hwk"  # a passkey bound to its device
SOFTWARE_KEY = "swk"  # a synced (backup-eligible) passkey
MULTIPLE_FACTORS = "mfa"

AuthMethods = tuple[str, ...]


def with_second_factor(first: AuthMethods, second: AuthMethods) -> AuthMethods:
    """The methods of a login that used both, marked as multi-factor."""
    combined = [*first, *(method for method in second if method not in first)]
    return (*(m for m in combined if m != MULTIPLE_FACTORS), MULTIPLE_FACTORS)


def to_column(methods: AuthMethods) -> str:
    return " ".join(methods)


def from_column(value: str) -> AuthMethods:
    return tuple(value.split())
