"""Private signing keys at rest: AES-256-GCM under the key-encryption key (KEK).

    sealed = version(1) | nonce(12) | AES-256-GCM(KEK, nonce, PKCS#8 DER, aad=kid)

The kid is the associated data, so a sealed key copied onto another row (another kid)
does not open. The KEK never enters the database: `AUTHAPI_KEY_ENCRYPTION_KEY`, or in
development a random one kept in the data directory (mode 0600), like the
refresh-token secret. A database copy or backup therefore holds no usable private key.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from authapi.config import Settings
from authapi.signing.keys import KeyConfigError, PrivateKey, write_new_file

KEK_SIZE = 32
_VERSION = 1
_NONCE_SIZE = 12
KEK_FILE_NAME = "key-encryption.key"


def decode_kek(text: str) -> bytes:
    """The 32 bytes of a base64 (standard or URL-safe) KEK, else ValueError."""
    value = text.strip().replace("-", "+").replace("_", "/").rstrip("=")
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != KEK_SIZE:
        raise ValueError(
            f"must be {KEK_SIZE} random bytes, base64-encoded (make one with "
            "`openssl rand -base64 32`)"
        )
    return raw


def load_key_encryption_key(settings: Settings) -> bytes:
    """The configured KEK, or in development one generated once into the data directory
    (so that restarts, workers and `authapi keys` on this host agree)."""
    if settings.key_encryption_key is not None:
        try:
            return decode_kek(settings.key_encryption_key.get_secret_value())
        except ValueError as exc:
            raise KeyConfigError(f"AUTHAPI_KEY_ENCRYPTION_KEY {exc}") from None
    if settings.environment == "production":  # the settings refuse this already
        raise KeyConfigError("production mode needs AUTHAPI_KEY_ENCRYPTION_KEY")
    path: Path = settings.data_dir / KEK_FILE_NAME
    if not path.exists():
        write_new_file(path, base64.b64encode(secrets.token_bytes(KEK_SIZE)) + b"\n")
    try:
        return decode_kek(path.read_text())
    except ValueError as exc:
        raise KeyConfigError(f"{path}: not a usable key-encryption key: {exc}") from None


def seal_bytes(kek: bytes, aad: bytes, plaintext: bytes) -> bytes:
    """`plaintext` sealed under the KEK, bound to `aad` (it opens only with the same)."""
    nonce = os.urandom(_NONCE_SIZE)
    return bytes([_VERSION]) + nonce + AESGCM(kek).encrypt(nonce, plaintext, aad)


def unseal_bytes(kek: bytes, aad: bytes, sealed: bytes) -> bytes:
    """What `seal_bytes` sealed; ValueError for an unknown format, InvalidTag for
    another KEK or another `aad`."""
    if len(sealed) < 1 + _NONCE_SIZE or sealed[0] != _VERSION:
        raise ValueError("unknown format of a sealed value")
    nonce, body = sealed[1 : 1 + _NONCE_SIZE], sealed[1 + _NONCE_SIZE :]
    return AESGCM(kek).decrypt(nonce, body, aad)


def seal(kek: bytes, kid: str, private_key: PrivateKey) -> bytes:
    plaintext = private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return seal_bytes(kek, kid.encode(), plaintext)


def unseal(kek: bytes, kid: str, sealed: bytes) -> PrivateKey:
    """The private key sealed for `kid`; KeyConfigError if this KEK does not open it."""
    try:
        plaintext = unseal_bytes(kek, kid.encode(), sealed)
    except ValueError:
        raise KeyConfigError(
            f"signing key {kid}: unknown format of the stored private key"
        ) from None
    except InvalidTag:
        raise KeyConfigError(
            f"cannot decrypt the private part of signing key {kid}: "
            "AUTHAPI_KEY_ENCRYPTION_KEY is not the key it was encrypted under"
        ) from None
    private = serialization.load_der_private_key(plaintext, password=None)
    if not isinstance(private, PrivateKey):
        raise KeyConfigError(f"signing key {kid}: unsupported key type")
    return private
