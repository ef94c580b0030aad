"""Signing keys: loaded from PEM or JWK files, or generated for development.

Each key is pinned to exactly one algorithm, derived from the key's type (Ed25519 ->
EdDSA, P-256 -> ES256, RSA >= 2048 bits -> RS256); verification accepts a token only
with its key's algorithm. Its `kid` is the RFC 7638 thumbprint unless a JWK file names one.
The keys in use live in the database (rollover.py); files and the development key only
seed an empty table.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt import PyJWK
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from authapi.config import Settings, SigningAlgorithm

logger = logging.getLogger(__name__)

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey

# RFC 7638 §3.2: the members of the thumbprint input, per key type.
_THUMBPRINT_MEMBERS = {
    "OKP": ("crv", "kty", "x"),
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
}


class KeyConfigError(ValueError):
    """A configured key file that cannot be used; the message says why."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: SigningAlgorithm
    public_key: PublicKey
    private_key: PrivateKey | None = field(default=None, repr=False)

    def public_jwk(self) -> dict[str, Any]:
        jwk = _public_jwk_of(self.public_key)
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}


@dataclass(frozen=True)
class KeySet:
    """`signing` signs; every key in `by_kid` is published and verifies."""

    signing: SigningKey
    by_kid: dict[str, SigningKey]
    # What the set was built from ((kid, state) pairs), to tell whether it changed.
    fingerprint: tuple[tuple[str, str], ...] = ()

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk() for key in self.by_kid.values()]}


def algorithm_for(key: PrivateKey | PublicKey) -> SigningAlgorithm:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "EdDSA"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise KeyConfigError(f"EC keys must use P-256 (ES256), not {key.curve.name}")
        return "ES256"
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise KeyConfigError("RSA keys must have at least 2048 bits")
        return "RS256"
    raise KeyConfigError(f"unsupported key type {type(key).__name__}; use Ed25519, P-256 or RSA")


def _public_jwk_of(key: PublicKey) -> dict[str, Any]:
    if isinstance(key, ed25519.Ed25519PublicKey):
        jwk = OKPAlgorithm.to_jwk(key, as_dict=True)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(key, as_dict=True)
    else:
        jwk = RSAAlgorithm.to_jwk(key, as_dict=True)
    return {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}


def thumbprint(key: PublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url)."""
    canonical = json.dumps(_public_jwk_of(key), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _key(private: PrivateKey | None, public: PublicKey, kid: str | None = None) -> SigningKey:
    return SigningKey(
        kid=kid or thumbprint(public),
        algorithm=algorithm_for(public),
        public_key=public,
        private_key=private,
    )


def load_key_file(path: Path) -> SigningKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyConfigError(f"cannot read key file {path}: {exc.strerror}") from None
    if data.lstrip().startswith(b"{"):
        return _load_jwk(path, data)
    try:
        if b"PRIVATE KEY" in data:
            private = serialization.load_pem_private_key(data, password=None)
            if not isinstance(private, PrivateKey):
                raise KeyConfigError(f"{path}: unsupported key type")
            return _key(private, private.public_key())
        public = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise KeyConfigError(f"{path}: not a usable PEM key ({exc})") from None
    if not isinstance(public, PublicKey):
        raise KeyConfigError(f"{path}: unsupported key type")
    return _key(None, public)


def _load_jwk(path: Path, data: bytes) -> SigningKey:
    try:
        jwk = json.loads(data)
        parsed = PyJWK(jwk)
    except Exception as exc:  # noqa: BLE001 - PyJWT raises several types for bad JWKs
        raise KeyConfigError(f"{path}: not a usable JWK ({type(exc).__name__})") from None
    key = parsed.key
    if isinstance(key, PrivateKey):
        private: PrivateKey | None = key
        public: PublicKey = key.public_key()
    elif isinstance(key, PublicKey):
        private, public = None, key
    else:
        raise KeyConfigError(f"{path}: symmetric keys are not accepted; use an asymmetric key")
    loaded = _key(private, public, kid=jwk.get("kid"))
    if jwk.get("alg") not in (None, loaded.algorithm):
        raise KeyConfigError(f"{path}: alg {jwk['alg']} does not match the key type")
    return loaded


def public_pem(key: PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_public_pem(kid: str, pem: str, algorithm: str) -> PublicKey:
    """A stored public key, checked against the algorithm it is pinned to."""
    public = serialization.load_pem_public_key(pem.encode())
    if not isinstance(public, PublicKey) or algorithm_for(public) != algorithm:
        raise KeyConfigError(f"signing key {kid}: the stored key does not match {algorithm}")
    return public


def generate_key(algorithm: SigningAlgorithm) -> SigningKey:
    """A new private key for `algorithm`, its kid the RFC 7638 thumbprint."""
    private = _generate(algorithm)
    return _key(private, private.public_key())


def _generate(algorithm: SigningAlgorithm) -> PrivateKey:
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


def write_new_file(path: Path, content: bytes) -> None:
    """Create `path` with `content`, mode 0600, atomically and only if it does not exist.

    Several workers may start at once: the first link wins, the others then read it.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)


def development_key_files(settings: Settings) -> list[Path]:
    """Plaintext PEM files that versions before the key table generated into the data
    directory: they seed an empty table once, and are then removed (rollover.py)."""
    return sorted(settings.data_dir.glob("signing-key-*.pem"))


def _development_key(settings: Settings) -> SigningKey:
    """An older version's generated key, if the data directory still holds one (so an
    upgrade keeps its kid), else a new key that exists only in memory until it is
    sealed into the database: no plaintext copy is ever written."""
    legacy = settings.data_dir / f"signing-key-{settings.signing_algorithm.lower()}.pem"
    if legacy.exists():
        return load_key_file(legacy)
    return generate_key(settings.signing_algorithm)


def load_keys(settings: Settings) -> KeySet:
    if settings.signing_key_files:
        keys = [load_key_file(path) for path in settings.signing_key_files]
    elif settings.environment == "production":
        raise KeyConfigError(
            "no signing key: the key table is empty; run `authapi keys generate` (or "
            "`authapi keys import FILE`), or set AUTHAPI_SIGNING_KEY_FILES"
        )
    else:
        keys = [_development_key(settings)]
    if keys[0].private_key is None:
        raise KeyConfigError("the first signing key file must hold a private key")
    by_kid: dict[str, SigningKey] = {}
    for key in keys:
        if key.kid in by_kid:
            raise KeyConfigError(f"two signing keys share kid {key.kid!r}")
        by_kid[key.kid] = key
    return KeySet(signing=keys[0], by_kid=by_kid)
