"""The passkey endpoints' bodies in and out."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from authapi.account.schemas import CurrentPassword
from authapi.mfa.fields import Credential, SecondFactor
from authapi.plain_text import NO_CONTROLS

PasskeyName = Annotated[str, Field(min_length=1, max_length=64), NO_CONTROLS]
# An mfa_token of the MFA grant (mfa_ + 43 characters); its length bounds the lookup.
MfaToken = Annotated[str, Field(min_length=1, max_length=128), NO_CONTROLS]


class PasskeyRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    credential: Credential
    name: PasskeyName | None = None


class PasskeyRemoval(SecondFactor):
    """The step-up of a sensitive change: the current password (and, with MFA on, a
    second factor)."""

    model_config = ConfigDict(extra="forbid")

    current_password: CurrentPassword


class LoginOptionsRequest(BaseModel):
    """`{}` for a passwordless login; `{"mfa_token"}` for a passkey as the second factor."""

    model_config = ConfigDict(extra="forbid")

    mfa_token: MfaToken | None = None


class PasskeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    created_at: datetime
    last_used_at: datetime | None
    # Synced across the owner's devices (RFC 8176 "swk"), else bound to one ("hwk").
    backup_eligible: bool
