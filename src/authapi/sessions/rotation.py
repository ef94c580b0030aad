"""Refresh-token rotation: the tokens, and the one place a session advances to its
next token (`rotate`), with the grace window and reuse detection of the contract.

Refresh tokens are derived from (session id, generation) under a server-side HMAC key:

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
The price: the key is as sensitive as the signing key. Changing it ends every session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, bindparam, case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from authapi.config import Settings
from authapi.db import UTCDateTime
from authapi.errors import InvalidGrant, RefreshTokenReused
from authapi.sessions.models import LoginSession, RevokeReason
from authapi.sessions.service import SessionPolicy, revoke
from authapi.signing.keys import write_new_file
from authapi.users.models import User

logger = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class Rotation:
    """What a refresh needs of the session it advanced, and of the session's user."""

    session_id: uuid.UUID
    user_id: uuid.UUID
    generation: int
    scope: str
    amr: str  # the login's methods, as the session keeps them (auth_methods.py)
    expires_at: datetime
    role: str | None  # None, like user_active, if the user is gone
    user_active: bool | None


# The refresh path, in SQLAlchemy Core with statements built once: the ORM's
# bulk-update machinery and a separate read of the user cost most of a refresh's CPU
# (bench/README.md, profiles). The user's role and whether they may still log in come
# back with the UPDATE, as subqueries (SQLite's RETURNING cannot name an UPDATE's
# FROM tables).
_sessions = cast(Table, LoginSession.__table__)
_users = cast(Table, User.__table__)
_NOW = bindparam("p_now", type_=UTCDateTime())
_IDLE_DEADLINE = bindparam("p_idle_deadline", type_=UTCDateTime())


def _of_user(column: ColumnElement[Any]) -> Any:
    return select(column).where(_users.c.id == _sessions.c.user_id).scalar_subquery()


_ROTATION_COLUMNS = (
    _sessions.c.id,
    _sessions.c.user_id,
    _sessions.c.generation,
    _sessions.c.scope,
    _sessions.c.amr,
    _sessions.c.expires_at,
    _of_user(_users.c.role).label("role"),
    _of_user(_users.c.is_active).label("user_active"),
)
_ADVANCE = (
    update(_sessions)
    .where(
        _sessions.c.id == bindparam("p_session_id"),
        _sessions.c.generation == bindparam("p_generation"),
        _sessions.c.revoked_at.is_(None),
        _sessions.c.expires_at > _NOW,
    )
    .values(
        generation=_sessions.c.generation + 1,
        rotated_at=_NOW,
        last_used_at=_NOW,
        expires_at=case(
            (_sessions.c.absolute_expires_at < _IDLE_DEADLINE, _sessions.c.absolute_expires_at),
            else_=_IDLE_DEADLINE,
        ),
    )
    .returning(*_ROTATION_COLUMNS)
)
_CURRENT = select(*_ROTATION_COLUMNS, _sessions.c.rotated_at, _sessions.c.revoked_at).where(
    _sessions.c.id == bindparam("p_session_id")
)


async def rotate(
    db: AsyncSession, policy: SessionPolicy, presented: RefreshTokenClaims, now: datetime
) -> Rotation:
    """Advance the session of a presented refresh token; its new generation names the
    refresh token to hand out.

    One conditional UPDATE does the rotation, so of any number of concurrent requests
    with the same token exactly one advances the session; PostgreSQL makes the others
    wait for the row and re-check the condition, SQLite runs them one after another.
    The others then find the token one generation behind: within the grace window they
    are answered with the session's newest token; later, it is a replay and ends the
    session.
    """
    connection = await db.connection()
    advanced = (
        await connection.execute(
            _ADVANCE,
            {
                "p_session_id": presented.session_id,
                "p_generation": presented.generation,
                "p_now": now,
                "p_idle_deadline": now + policy.idle_timeout,
            },
        )
    ).one_or_none()
    if advanced is not None:
        return Rotation(*advanced)

    current = (
        await connection.execute(_CURRENT, {"p_session_id": presented.session_id})
    ).one_or_none()
    if current is None or current.revoked_at is not None or current.expires_at <= now:
        raise InvalidGrant()
    session = Rotation(*current[: len(_ROTATION_COLUMNS)])
    behind = session.generation - presented.generation
    rotated_at = current.rotated_at
    if behind == 1 and rotated_at is not None and now <= rotated_at + policy.reuse_grace:
        return session
    if behind >= 1:
        await revoke(db, session.session_id, RevokeReason.REFRESH_TOKEN_REUSED, now)
        logger.warning(
            "refresh token reuse: session %s of user %s revoked (token %d generations old)",
            session.session_id,
            session.user_id,
            behind,
        )
        raise RefreshTokenReused(session.user_id)
    raise InvalidGrant()  # a generation from the future: only a leaked key makes one
