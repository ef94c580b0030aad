from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import datetime
from typing import Annotated

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, WithJsonSchema

from authapi.mfa.fields import SecondFactor
from authapi.plain_text import ALLOWED_CHARACTERS, NO_CONTROLS
from authapi.users.emails import MAX_EMAIL_LENGTH, normalize_email
from authapi.users.models import ROLES
from authapi.users.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH

# Documented as what normalize_email accepts: an address of at most 254 characters, not
# in a special-use domain (RFC 6761: .test, .invalid, ...), whatever the letter case.
_SPECIAL_USE = "|".join(
    "".join(f"[{c}{c.upper()}]" if c.isalpha() else re.escape(c) for c in name)
    for name in SPECIAL_USE_DOMAIN_NAMES
)
Email = Annotated[
    str,
    Field(
        max_length=MAX_EMAIL_LENGTH,
        description="An email address; special-use domains such as .test are refused.",
        # Documentation only: normalize_email is what validates.
        json_schema_extra={
            "format": "email",
            "pattern": rf"^(?!.*[@.](?:{_SPECIAL_USE})$){ALLOWED_CHARACTERS}$",
        },
    ),
    NO_CONTROLS,
    AfterValidator(normalize_email),
]
# Length only, no composition rules (NIST 800-63B §5.1.1.2): any printable Unicode.
Password = Annotated[
    str, Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH), NO_CONTROLS
]


def _known_role(value: str) -> str:
    if value not in ROLES:
        raise ValueError(f"must be one of: {', '.join(ROLES)}")
    return value


# A string, not an Enum: the one list of roles is users.models.ROLES.
Role = Annotated[
    str, AfterValidator(_known_role), WithJsonSchema({"type": "string", "enum": list(ROLES)})
]


EmailCursor = Annotated[str, Field(max_length=MAX_EMAIL_LENGTH), NO_CONTROLS]


def _fold_fragment(value: str) -> str:
    # As normalize_email folds whole addresses, so that a filter matches whatever case
    # or Unicode form it is typed in.
    return unicodedata.normalize("NFKC", value.strip()).lower()


EmailFragment = Annotated[
    str, Field(max_length=MAX_EMAIL_LENGTH), NO_CONTROLS, AfterValidator(_fold_fragment)
]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    password: Password


class PasswordChange(SecondFactor):
    model_config = ConfigDict(extra="forbid")

    # The current one is checked, not validated: it may predate today's length rules.
    current_password: Annotated[str, Field(max_length=1024), NO_CONTROLS]
    new_password: Password


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    email_verified: bool
    mfa_enabled: bool  # a second factor is on: a password alone does not log in
    role: str
    is_active: bool
    created_at: datetime


class UserUpdate(BaseModel):
    """What an admin may change; an absent (or null) field stays as it is."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    is_active: StrictBool | None = None


class UserPage(BaseModel):
    items: list[UserOut]
    # Pass as `after` to get the next page; null on the last page.
    next_after: str | None
