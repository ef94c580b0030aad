"""The body fields of a second factor (a code, or a passkey's credential), shared by the
bodies of every sensitive change and the passkey endpoints."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from authapi.passkeys.credentials import MAX_CREDENTIAL_CHARS
from authapi.plain_text import NO_CONTROLS

# The JSON of `PublicKeyCredential.toJSON()`, as a string (as the passkey grant's form
# field carries it too); read by passkeys/credentials.py.
Credential = Annotated[str, Field(min_length=2, max_length=MAX_CREDENTIAL_CHARS), NO_CONTROLS]
# A TOTP code (6 digits) or a recovery code (`xxxx-xxxx-xxxx`), as typed.
Otp = Annotated[str, Field(min_length=1, max_length=64, examples=["123456"]), NO_CONTROLS]


class SecondFactor(BaseModel):
    """The second factor of a sensitive change, for a user who has one: `otp` (a TOTP
    or recovery code) or `passkey` (an assertion's JSON, after POST
    /users/me/passkeys/step-up-options)."""

    otp: Otp | None = None
    passkey: Credential | None = None
