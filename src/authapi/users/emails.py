"""Email addresses, normalised so that one mailbox can only ever be one account."""

from __future__ import annotations

import unicodedata

from email_validator import EmailNotValidError, validate_email

MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit


def normalize_email(raw: str) -> str:
    """Validate syntax and return the canonical form.

    NFKC folds look-alike Unicode forms, email-validator lowercases and IDNA-encodes
    the domain, and the local part is lowercased too: no mail provider hands out
    addresses that differ only by case, and treating them as one prevents twin accounts.
    Raises ValueError with a readable message.
    """
    if len(raw) > MAX_EMAIL_LENGTH:
        raise ValueError("email address is too long")
    candidate = unicodedata.normalize("NFKC", raw.strip())
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"invalid email address: {exc}") from None
    local, _, domain = result.normalized.rpartition("@")
    return f"{local.lower()}@{domain.lower()}"
