from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from authapi.account.schemas import CurrentPassword
from authapi.mfa.fields import Otp, SecondFactor


class TotpEnrolment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: CurrentPassword


class TotpSecret(BaseModel):
    secret: str  # base32, for typing into an app that cannot scan
    otpauth_uri: str
    qr_svg: str  # the URI as a QR code: an SVG document


class TotpConfirmation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Otp


class RecoveryCodes(BaseModel):
    recovery_codes: list[str]


class SensitiveChange(SecondFactor):
    """The body of DELETE /users/me/mfa/totp and POST /users/me/mfa/recovery-codes."""

    model_config = ConfigDict(extra="forbid")

    current_password: CurrentPassword
