"""Access tokens: RFC 9068 JWTs, issued here and verified with the key set alone.

Verification never reads the database. It refuses anything that is not exactly what
we issue: `typ` must be `at+jwt`, the `kid` must be one of ours, and the algorithm is
the one pinned to that key, never the one the header asks for.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jwt

from authapi.auth_methods import AuthMethods
from authapi.errors import InvalidToken, ServiceUnavailable
from authapi.signing.keys import KeySet

TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type, not a secret
# Far above any token we issue; bigger input is refused before any parsing.
MAX_TOKEN_LENGTH = 4096
# The compact serialization exactly as we issue it: three unpadded base64url segments.
# PyJWT also decodes padded segments, so without this `token + "=="` verified too.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
REQUIRED_CLAIMS = ["iss", "aud", "sub", "exp", "iat", "jti", "sid", "client_id", "scope", "role"]
# What each claim must be, exactly as `issue` writes it. PyJWT checks the times with
# `int(value)`, so it takes "1700000000", 1.7e9 and true as times; the rest of the app
# (the verified-token cache, /whoami's schema) would then fail on them with a 500.
_NUMERIC_DATES = ("exp", "iat", "nbf")
_STRINGS = ("iss", "jti", "client_id", "scope", "role")
_UUIDS = ("sub", "sid")  # compared as strings (revoked sessions): one spelling only


@dataclass(frozen=True)
class AccessTokenSubject:
    """What an access token is issued for."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    role: str
    scope: str
    amr: AuthMethods


@dataclass(frozen=True)
class Caller:
    """Who made a request, from its verified access token."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    role: str
    scope: str
    # The token's claims as they are, for /whoami, which echoes them.
    claims: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Caller:
        """From the claims `AccessTokens.verify` returned (so `sub` and `sid` are UUIDs)."""
        return cls(
            user_id=uuid.UUID(claims["sub"]),
            session_id=uuid.UUID(claims["sid"]),
            role=claims["role"],
            scope=claims["scope"],
            claims=claims,
        )


class AccessTokens:
    def __init__(
        self, keys: KeySet, *, issuer: str, audience: str, client_id: str, ttl: int
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.client_id = client_id
        self.ttl = ttl

    def issue(self, subject: AccessTokenSubject, now: datetime) -> str:
        issued_at = int(now.timestamp())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(subject.user_id),
            "exp": issued_at + self.ttl,
            "iat": issued_at,
            "jti": uuid.uuid4().hex,
            "sid": str(subject.session_id),
            "client_id": self.client_id,
            "scope": subject.scope,
            "role": subject.role,
            "amr": list(subject.amr),
        }
        key = self.keys.signing
        if key.private_key is None:
            # Started while the database was down (signing/published.py): until the keys
            # are read, this instance only verifies.
            raise ServiceUnavailable("The signing keys are not loaded yet; try again shortly.")
        return jwt.encode(
            claims,
            key.private_key,
            algorithm=key.algorithm,
            headers={"typ": TOKEN_TYPE, "kid": key.kid},
        )

    def verify(self, token: str) -> dict[str, Any]:
        """Return the claims of a valid token, else raise InvalidToken."""
        if len(token) > MAX_TOKEN_LENGTH or not _COMPACT_JWS.fullmatch(token):
            raise InvalidToken()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise InvalidToken() from None
        kid = header.get("kid")
        typ = header.get("typ")
        if not isinstance(kid, str) or not isinstance(typ, str):
            raise InvalidToken()
        # RFC 9068 §4: "at+jwt", also written with the "application/" media-type prefix.
        if typ.lower().removeprefix("application/") != TOKEN_TYPE:
            raise InvalidToken()
        key = self.keys.by_kid.get(kid)
        if key is None:
            raise InvalidToken()
        try:
            claims = jwt.decode(
                token,
                key.public_key,
                algorithms=[key.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": REQUIRED_CLAIMS, "strict_aud": True},
            )
        except jwt.InvalidTokenError:
            raise InvalidToken() from None
        if not _well_typed(claims):
            raise InvalidToken()
        return claims


def _well_typed(claims: dict[str, Any]) -> bool:
    return (
        all(_is_integer(claims[name]) for name in _NUMERIC_DATES if name in claims)
        and all(isinstance(claims[name], str) for name in _STRINGS)
        and all(_is_canonical_uuid(claims[name]) for name in _UUIDS)
        and _is_list_of_strings(claims.get("amr", []))
    )


def _is_list_of_strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_integer(value: object) -> bool:
    return type(value) is int  # not a bool, a float or a string of digits


def _is_canonical_uuid(value: object) -> bool:
    """Lowercase and hyphenated: `{...}`, `urn:uuid:...` and uppercase spellings of the
    same UUID would pass for another session in every string comparison."""
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
