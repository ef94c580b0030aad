"""Signing keys as an operator hands them over: PEM files, and a key-encryption key."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization

from authapi.signing.keys import PrivateKey

# A real key-encryption key: 32 random bytes, base64.
KEK = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="


def write_pem(path: Path, key: PrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def write_public_pem(path: Path, key: PrivateKey) -> Path:
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path
