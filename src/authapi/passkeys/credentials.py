"""Reading what a browser's `PublicKeyCredential.toJSON()` sent, as hostile input.

Every refusal here is a `MalformedCredential` (400 with a reason); py_webauthn is only
handed a credential that is a JSON object of bounded size, and whatever it raises on
the ones that still fail to parse or verify is caught as `WEBAUTHN_FAILURES`."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from webauthn.helpers.exceptions import WebAuthnException

# A registration (attestation object with a "none" statement and a COSE key) is well
# under 2 KiB; RSA keys and long transports lists stay far below this.
MAX_CREDENTIAL_CHARS = 16 * 1024
MAX_CREDENTIAL_ID_BYTES = 1023  # WebAuthn's own limit
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")

# What py_webauthn (and cbor2, cryptography and json beneath it) raises on input that
# does not hold together: a refusal of the credential, never a server error.
WEBAUTHN_FAILURES: tuple[type[Exception], ...] = (
    WebAuthnException,
    ValueError,  # binascii.Error, UnicodeDecodeError, cbor2's decode errors, bad enums
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
)


class MalformedCredential(ValueError):
    """Not a credential's JSON: the message says what is wrong (never what was sent)."""


def base64url_decode(value: object, what: str) -> bytes:
    """Strict base64url (padding optional): the standard library skips characters
    outside the alphabet, which would let two spellings stand for one value."""
    if not isinstance(value, str) or not _BASE64URL.fullmatch(value.rstrip("=")):
        raise MalformedCredential(f"{what} must be a base64url string")
    try:
        return base64.urlsafe_b64decode(value.rstrip("=") + "==")
    except (binascii.Error, ValueError) as exc:
        raise MalformedCredential(f"{what} must be a base64url string") from exc


def load(credential: str) -> dict[str, Any]:
    """The credential as a JSON object, or MalformedCredential."""
    if len(credential) > MAX_CREDENTIAL_CHARS:
        raise MalformedCredential(f"credential is longer than {MAX_CREDENTIAL_CHARS} characters")
    try:
        document = json.loads(credential)
    except (ValueError, RecursionError) as exc:
        raise MalformedCredential("credential must be JSON (PublicKeyCredential.toJSON())") from exc
    if not isinstance(document, dict):
        raise MalformedCredential("credential must be a JSON object")
    return document


def credential_id(document: dict[str, Any]) -> bytes:
    raw = base64url_decode(document.get("rawId"), "credential.rawId")
    if not raw or document.get("id") != document.get("rawId"):
        raise MalformedCredential("credential.id and credential.rawId must be equal")
    if len(raw) > MAX_CREDENTIAL_ID_BYTES:
        raise MalformedCredential(f"credential.rawId is over {MAX_CREDENTIAL_ID_BYTES} bytes")
    return raw


def signed_challenge(document: dict[str, Any]) -> bytes:
    """The challenge inside `response.clientDataJSON`: which ceremony this answers."""
    response = document.get("response")
    if not isinstance(response, dict):
        raise MalformedCredential("credential.response must be an object")
    client_data = base64url_decode(response.get("clientDataJSON"), "response.clientDataJSON")
    try:
        collected = json.loads(client_data)
    except (ValueError, RecursionError) as exc:
        raise MalformedCredential("response.clientDataJSON must hold JSON") from exc
    if not isinstance(collected, dict):
        raise MalformedCredential("response.clientDataJSON must hold a JSON object")
    challenge = base64url_decode(collected.get("challenge"), "clientDataJSON.challenge")
    if not challenge:
        raise MalformedCredential("clientDataJSON.challenge is empty")
    return challenge


def user_handle(document: dict[str, Any]) -> bytes | None:
    response = document.get("response")
    handle = response.get("userHandle") if isinstance(response, dict) else None
    if handle is None:
        return None
    return base64url_decode(handle, "response.userHandle")
