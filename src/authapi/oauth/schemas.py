from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from authapi.plain_text import NO_CONTROLS

# Far above the 79 characters of a refresh token, far below anything costly.
TokenString = Annotated[str, Field(min_length=1, max_length=4096), NO_CONTROLS]


class TokenResponse(BaseModel):
    """RFC 6749 §5.1. In browser mode the refresh token is in a cookie, not here."""

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - RFC 6750 token type
    expires_in: int
    refresh_token: str | None = None
    scope: str


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: TokenString


class LogoutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: TokenString | None = None


class ServerMetadata(BaseModel):
    """RFC 8414 authorization server metadata. No `authorization_endpoint`: the grants
    are the password, refresh-token and second-factor grants of the token endpoint,
    none of which goes through a browser redirect."""

    issuer: str
    token_endpoint: str
    jwks_uri: str
    revocation_endpoint: str
    grant_types_supported: list[str]
    response_types_supported: list[str]
    scopes_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    revocation_endpoint_auth_methods_supported: list[str]
    service_documentation: str


class TokenForm(BaseModel):
    """The RFC 6749 token request; unrecognised parameters are ignored (§3.2)."""

    grant_type: Annotated[str, Field(max_length=64), NO_CONTROLS] | None = None
    username: Annotated[str, Field(max_length=320), NO_CONTROLS] | None = None
    password: Annotated[str, Field(max_length=1024), NO_CONTROLS] | None = None
    scope: Annotated[str, Field(max_length=1024), NO_CONTROLS] | None = None
    refresh_token: TokenString | None = None
    # The MFA grant (urn:authapi:params:oauth:grant-type:mfa): the password grant's
    # mfa_token, and a second factor: `otp` (a TOTP or recovery code) or `credential`
    # (a WebAuthn assertion, JSON; also the passkey grant's one parameter).
    mfa_token: Annotated[str, Field(max_length=128), NO_CONTROLS] | None = None
    otp: Annotated[str, Field(max_length=64), NO_CONTROLS] | None = None
    credential: Annotated[str, Field(max_length=16384), NO_CONTROLS] | None = None


class RevokeForm(BaseModel):
    """RFC 7009 §2.1."""

    token: TokenString  # REQUIRED; without it the answer is 400 invalid_request
    token_type_hint: Annotated[str, Field(max_length=64), NO_CONTROLS] | None = None
