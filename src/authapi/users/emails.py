"""Email addresses, normalised so that one mailbox can only ever be one account.

Stored form: the local part and the domain lowercased, an internationalised domain in
Unicode (`bücher.example`, IDNA U-labels), as email-validator normalises it. Input in
the `xn--` spelling (A-labels) is the same address and is stored the same way. Mail to
a relay without SMTPUTF8 needs the A-label domain: derive it when sending
(`validate_email(address, check_deliverability=False).ascii_domain`), it is not stored.
"""

from __future__ import annotations

import re
import unicodedata

import idna
from email_validator import EmailNotValidError, validate_email

MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit
A_LABEL_PREFIX = "xn--"  # RFC 5890: an IDNA label in ASCII (Punycode)


def normalize_email(raw: str) -> str:
    """Validate syntax and return the canonical form.

    NFKC folds look-alike Unicode forms, email-validator lowercases the domain and gives
    it in Unicode (so `xn--` input and Unicode input are one address), and the local
    part is lowercased too: no mail provider hands out addresses that differ only by
    case, and treating them as one prevents twin accounts.
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


def _u_label(label: str) -> str:
    try:
        return idna.decode(label)
    except (idna.IDNAError, UnicodeError):
        return label  # not a whole A-label (a piece of one, or plain ASCII): as typed


def fragment_spellings(fragment: str) -> set[str]:
    """The ways a piece of an address may appear in the stored form: as typed, and with
    each whole `xn--` label in Unicode, so that `xn--bcher-kva.example` finds what is
    stored as `bücher.example`. (A piece of an A-label, such as `xn--bch`, cannot be
    decoded; `bch` would not be in the Unicode form either.)"""
    if A_LABEL_PREFIX not in fragment:
        return {fragment}
    parts = re.split(r"([@.])", fragment)
    decoded = "".join(_u_label(p) if p.startswith(A_LABEL_PREFIX) else p for p in parts)
    return {fragment, decoded}
