from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from authapi.mfa.fields import SecondFactor
from authapi.plain_text import NO_CONTROLS
from authapi.users.schemas import Email, Password

# What a mailed link carries: `ev_` or `pr_` and 43 characters; anything longer is no
# token of ours, and is refused before it is looked up.
MailToken = Annotated[
    str,
    Field(
        min_length=1, max_length=100, examples=["ev_4fJ0V6QmX2sZ0yq9TnC1pKcR3wUuAe8HbLdYg5oMiIs"]
    ),
    NO_CONTROLS,
]
# Checked, not validated: it may predate today's length rules (as in PasswordChange).
CurrentPassword = Annotated[str, Field(max_length=1024), NO_CONTROLS]


class EmailVerification(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: MailToken


class PasswordForgot(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email


class PasswordReset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: MailToken
    new_password: Password


class EmailChange(SecondFactor):
    model_config = ConfigDict(extra="forbid")

    new_email: Email
    current_password: CurrentPassword


class AccountDeletion(SecondFactor):
    model_config = ConfigDict(extra="forbid")

    current_password: CurrentPassword
