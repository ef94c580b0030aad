"""Signing-key rollover: the rules behind `authapi keys`, and the key set built from the
table. A signing key is "rolled over": "rotate" means refresh tokens (sessions/rotation.py).

A key is *next* (published, not signing), *current* (signing; exactly one) or *retired*
(published until every token it signed has expired), and is then removed. The waits
between the steps come from the settings (`Waits`): a next key signs only once every
resource server can have it, a retired key goes only once its tokens have expired.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from authapi.config import Settings
from authapi.signing.keys import (
    KeyConfigError,
    KeySet,
    SigningKey,
    algorithm_for,
    development_key_files,
    load_key_file,
    load_keys,
    load_public_pem,
    public_pem,
    thumbprint,
)
from authapi.signing.models import KeyState, StoredSigningKey
from authapi.signing.sealing import seal, unseal

logger = logging.getLogger(__name__)

# Added to each wait: the reload's own read and small clock differences between hosts.
MARGIN_SECONDS = 2
_ORDER = {KeyState.CURRENT: 0, KeyState.NEXT: 1, KeyState.RETIRED: 2}
_CONCURRENT = (
    "another key change ran at the same time; nothing was changed "
    "(see `authapi keys list`, then try again)"
)


class KeyChangeRefused(Exception):  # noqa: N818 - the refusal itself, not a failure
    """A key change that is not allowed; the message says why and what to do."""


class KeyChangeTooEarly(KeyChangeRefused):
    """Allowed from `allowed_at` on (or now, with --force)."""

    def __init__(self, message: str, allowed_at: datetime) -> None:
        super().__init__(message)
        self.allowed_at = allowed_at


@dataclass(frozen=True)
class Waits:
    # From publishing a next key until it may sign: every instance serves it (reload
    # interval) and every cached copy of the JWKS has expired (max-age).
    publish: timedelta
    # From retiring a key until it may be removed: every instance stopped signing with
    # it (reload interval) and every token it signed has expired (TTL).
    expire: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> Waits:
        pickup = settings.key_reload_interval + MARGIN_SECONDS
        return cls(
            publish=timedelta(seconds=settings.jwks_max_age + pickup),
            expire=timedelta(seconds=settings.access_token_ttl + pickup),
        )

    def roll_over_allowed_at(self, next_key: StoredSigningKey) -> datetime:
        return next_key.created_at + self.publish

    def remove_allowed_at(self, retired: StoredSigningKey) -> datetime:
        return (retired.retired_at or retired.created_at) + self.expire


def _sort_key(row: StoredSigningKey) -> tuple[int, float]:
    # Current, next, then retired keys newest first.
    return _ORDER[KeyState(row.state)], -(row.retired_at or row.created_at).timestamp()


async def list_keys(db: AsyncSession) -> list[StoredSigningKey]:
    return sorted(await db.scalars(select(StoredSigningKey)), key=_sort_key)


def _one(rows: list[StoredSigningKey], state: KeyState) -> StoredSigningKey | None:
    return next((row for row in rows if row.state == state), None)


def fingerprint(rows: list[StoredSigningKey]) -> tuple[tuple[str, str], ...]:
    return tuple((row.kid, row.state) for row in sorted(rows, key=_sort_key))


def key_set(rows: list[StoredSigningKey], kek: bytes) -> KeySet:
    """The published keys of `rows`, the current one with its private part (the only one
    decrypted). KeyConfigError if there is no usable current key."""
    by_kid: dict[str, SigningKey] = {}
    signing: SigningKey | None = None
    for row in sorted(rows, key=_sort_key):
        public = load_public_pem(row.kid, row.public_key, row.algorithm)
        key = SigningKey(kid=row.kid, algorithm=algorithm_for(public), public_key=public)
        if row.state == KeyState.CURRENT:
            if row.sealed_private_key is None:
                raise KeyConfigError(f"the current signing key {row.kid} has no private part")
            private = unseal(kek, row.kid, row.sealed_private_key)
            if thumbprint(private.public_key()) != thumbprint(public):
                raise KeyConfigError(f"signing key {row.kid}: private and public parts differ")
            key = SigningKey(key.kid, key.algorithm, public, private)
            signing = key
        by_kid[key.kid] = key
    if signing is None:
        raise KeyConfigError("the database holds no current signing key")
    return KeySet(signing=signing, by_kid=by_kid, fingerprint=fingerprint(rows))


def _stored(key: SigningKey, kek: bytes, state: KeyState, now: datetime) -> StoredSigningKey:
    return StoredSigningKey(
        kid=key.kid,
        algorithm=key.algorithm,
        state=state,
        public_key=public_pem(key.public_key),
        sealed_private_key=seal(kek, key.kid, key.private_key) if key.private_key else None,
        created_at=now,
        activated_at=now if state == KeyState.CURRENT else None,
        retired_at=now if state == KeyState.RETIRED else None,
    )


async def seed(db: AsyncSession, settings: Settings, kek: bytes, now: datetime) -> bool:
    """On an empty table, store the configured keys (AUTHAPI_SIGNING_KEY_FILES: the first
    becomes current, the others retired) or, in development, the generated key."""
    if await db.scalar(select(func.count()).select_from(StoredSigningKey)):
        return False
    configured = load_keys(settings)
    for key in configured.by_kid.values():
        state = KeyState.CURRENT if key is configured.signing else KeyState.RETIRED
        db.add(_stored(key, kek, state, now))
    await db.flush()
    if settings.signing_key_files:
        logger.info("signing keys: stored %s as the current key", configured.signing.kid)
    else:
        logger.warning(
            "signing keys: none configured; stored a development %s key, %s, in the "
            "database as the current key (its private part encrypted under the "
            "key-encryption key). Production needs AUTHAPI_KEY_ENCRYPTION_KEY and "
            "AUTHAPI_REFRESH_TOKEN_SECRET, and its keys are managed with `authapi keys "
            "generate|import|rollover` (docs/operations.md: Signing keys)",
            configured.signing.algorithm,
            configured.signing.kid,
        )
    return True


def remove_sealed_development_keys(settings: Settings, rows: list[StoredSigningKey]) -> None:
    """Delete an older version's plaintext development key file once the table holds
    that key sealed: the database and the key-encryption key are then its only copy,
    as for every other key. A file the table does not hold is left alone."""
    sealed = {row.kid for row in rows if row.sealed_private_key is not None}
    for path in development_key_files(settings):
        try:
            kid = load_key_file(path).kid
        except KeyConfigError:
            continue
        if kid in sealed:
            # Several workers may get here at once; the first one removes it.
            path.unlink(missing_ok=True)
            logger.info("signing keys: removed %s, now sealed in the database as %s", path, kid)


async def add_key(
    db: AsyncSession,
    key: SigningKey,
    kek: bytes,
    now: datetime,
    waits: Waits,
    *,
    current: bool = False,
    force: bool = False,
) -> StoredSigningKey:
    """Store a new key as the next key; as the current one on a table without one (a new
    deployment: nothing was signed yet), or with `current` (a rollover, so `force`)."""
    if key.private_key is None:
        raise KeyChangeRefused("a signing key needs its private part; this is a public key")
    if len(key.kid) > 255:
        raise KeyChangeRefused("the kid is longer than 255 characters")
    rows = await list_keys(db)
    if any(row.kid == key.kid for row in rows):
        raise KeyChangeRefused(f"key {key.kid} is stored already (`authapi keys list`)")
    pending = _one(rows, KeyState.NEXT)
    if pending is not None:
        raise KeyChangeRefused(
            f"there is a next key already, {pending.kid}: roll over to it (`authapi keys "
            f"rollover`) or remove it (`authapi keys retire -- {pending.kid}`) first"
        )
    first = _one(rows, KeyState.CURRENT) is None
    row = _stored(key, kek, KeyState.CURRENT if first else KeyState.NEXT, now)
    db.add(row)
    await db.flush()
    if current and not first:
        await roll_over(db, kek, now, waits, force=force)
    return row


async def roll_over(
    db: AsyncSession, kek: bytes, now: datetime, waits: Waits, *, force: bool = False
) -> tuple[StoredSigningKey, StoredSigningKey | None]:
    """Make the next key current and the current one retired: (new current, retired)."""
    rows = await list_keys(db)
    promoted = _one(rows, KeyState.NEXT)
    if promoted is None:
        raise KeyChangeRefused("there is no next key: run `authapi keys generate` first")
    if promoted.sealed_private_key is None:
        raise KeyChangeRefused(f"the next key {promoted.kid} has no private part")
    try:
        unseal(kek, promoted.kid, promoted.sealed_private_key)
    except KeyConfigError as exc:
        raise KeyChangeRefused(str(exc)) from None
    previous = _one(rows, KeyState.CURRENT)
    allowed_at = waits.roll_over_allowed_at(promoted)
    if previous is not None and not force and now < allowed_at:
        raise KeyChangeTooEarly(
            f"the next key {promoted.kid} was published at {_instant(promoted.created_at)}; "
            f"resource servers may not have it before {_instant(allowed_at)} "
            f"({_seconds(allowed_at - now)} s from now: AUTHAPI_JWKS_MAX_AGE + "
            f"AUTHAPI_KEY_RELOAD_INTERVAL + {MARGIN_SECONDS} s). Run this again then "
            "(or add --force, and tokens it signs may be refused until they have it)",
            allowed_at,
        )
    if previous is not None:
        await _move(db, previous, KeyState.CURRENT, KeyState.RETIRED, retired_at=now)
    await _move(db, promoted, KeyState.NEXT, KeyState.CURRENT, activated_at=now)
    return promoted, previous


async def remove(
    db: AsyncSession, kid: str, now: datetime, waits: Waits, *, force: bool = False
) -> StoredSigningKey:
    """Remove a retired (or a never used next) key: it leaves the JWKS."""
    row = await db.get(StoredSigningKey, kid)
    if row is None:
        raise KeyChangeRefused(f"there is no signing key {kid} (`authapi keys list`)")
    if row.state == KeyState.CURRENT:
        raise KeyChangeRefused(
            f"{kid} is the current signing key: generate a next key and roll over to it first"
        )
    if row.state == KeyState.RETIRED and not force:
        allowed_at = waits.remove_allowed_at(row)
        if now < allowed_at:
            raise KeyChangeTooEarly(
                f"tokens signed with {kid} may be valid until {_instant(allowed_at)} "
                f"({_seconds(allowed_at - now)} s from now: it was retired at "
                f"{_instant(row.retired_at or row.created_at)}, + AUTHAPI_ACCESS_TOKEN_TTL + "
                f"AUTHAPI_KEY_RELOAD_INTERVAL + {MARGIN_SECONDS} s). Run this again then "
                "(or add --force, and they are refused at once)",
                allowed_at,
            )
    result: CursorResult[tuple[()]] = await db.execute(  # type: ignore[assignment]
        delete(StoredSigningKey)
        .where(StoredSigningKey.kid == kid, StoredSigningKey.state == row.state)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise KeyChangeRefused(_CONCURRENT)
    return row


async def _move(
    db: AsyncSession,
    row: StoredSigningKey,
    old: KeyState,
    new: KeyState,
    **stamps: datetime,
) -> None:
    """One conditional UPDATE: a concurrent change of the same key makes it refuse."""
    result: CursorResult[tuple[()]] = await db.execute(  # type: ignore[assignment]
        update(StoredSigningKey)
        .where(StoredSigningKey.kid == row.kid, StoredSigningKey.state == old)
        .values(state=new, **stamps)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise KeyChangeRefused(_CONCURRENT)
    for name, value in {"state": new.value, **stamps}.items():
        set_committed_value(row, name, value)


def _instant(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds(delta: timedelta) -> int:
    return max(1, int(delta.total_seconds() + 0.999))
