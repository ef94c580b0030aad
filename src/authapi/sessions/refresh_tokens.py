"""Refresh tokens: derived from (session id, generation) under a server-side HMAC key.

    rt_ + base64url( version(1) | session id(16) | generation(8) | HMAC-SHA256(32) )

Why derived and not random-and-stored (the choice issue #2 asks us to explain):
- Nothing about a token is stored; a copy of the database yields no usable token, and
  the key never enters the database.
- The 256-bit MAC is the unguessable part: without the key nobody can produce a valid
  token, and each (session, generation) pair has exactly one.
- Any genuine token names its session and generation, so a token rotated long ago is
  still recognised as a replay (and revokes its session) without keeping a history
  table, and a concurrent duplicate within the grace window can be answered with the
  session's newest token by recomputing it instead of keeping it encrypted somewhere.
- A forged token (bad MAC) is refused before any database access, so nobody can
  revoke somebody else's session by guessing its id.
The price: the key is as sensitive as the signing key. Rotating it ends every session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

from authapi.config import Settings
from authapi.signing.keys import write_new_file

PREFIX = "rt_"
VERSION = 1
_MAC_SIZE = 32
_RAW_SIZE = 1 + 16 + 8 + _MAC_SIZE
# 57 bytes are exactly 76 base64 characters: no padding, one spelling per token.
_TOKEN_SHAPE = re.compile(PREFIX + r"[A-Za-z0-9_-]{76}")
_DOMAIN = b"authapi refresh token v1"


@dataclass(frozen=True)
class RefreshTokenClaims:
    session_id: uuid.UUID
    generation: int


class RefreshTokenCodec:
    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the refresh token key must be at least 32 bytes")
        self._key = key

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, _DOMAIN + body, hashlib.sha256).digest()

    def encode(self, session_id: uuid.UUID, generation: int) -> str:
        body = bytes([VERSION]) + session_id.bytes + generation.to_bytes(8, "big")
        raw = body + self._mac(body)
        return PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def decode(self, token: str) -> RefreshTokenClaims | None:
        """The claims of a genuine token, or None for anything else."""
        if not _TOKEN_SHAPE.fullmatch(token):
            return None
        raw = base64.urlsafe_b64decode(token[len(PREFIX) :])
        if raw[0] != VERSION:
            return None
        body, mac = raw[:-_MAC_SIZE], raw[-_MAC_SIZE:]
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        return RefreshTokenClaims(
            session_id=uuid.UUID(bytes=body[1:17]),
            generation=int.from_bytes(body[17:25], "big"),
        )


def load_refresh_token_key(settings: Settings) -> bytes:
    """The configured secret, or in development a random one kept in the data directory
    (so restarts and workers agree)."""
    if settings.refresh_token_secret is not None:
        return hashlib.sha256(settings.refresh_token_secret.get_secret_value().encode()).digest()
    path: Path = settings.data_dir / "refresh-token.key"
    if not path.exists():
        write_new_file(path, base64.b64encode(secrets.token_bytes(32)) + b"\n")
    return base64.b64decode(path.read_bytes().strip())
