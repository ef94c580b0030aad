from __future__ import annotations

from pydantic import BaseModel


class AccessClaims(BaseModel):
    """The claims of an access token (RFC 9068 §2.2 plus `sid` and `role`)."""

    iss: str
    aud: str
    sub: str
    exp: int
    iat: int
    jti: str
    sid: str
    client_id: str
    scope: str
    role: str
