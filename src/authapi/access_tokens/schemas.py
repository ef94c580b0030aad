from __future__ import annotations

from pydantic import BaseModel


class AccessClaims(BaseModel):
    """The claims of an access token (RFC 9068 §2.2 plus `sid`, `role` and `amr`)."""

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
    # RFC 8176: how the login behind the session was made ("pwd"; "otp" or a passkey's
    # "hwk"/"swk"; "mfa" when two factors were used). Absent only from tokens issued
    # before sessions kept it.
    amr: list[str] = []
