"""Keeping an instance's signing keys current, without a restart.

The keys live in the database (every instance shares it already, so no shared volume;
a backup holds their private parts only encrypted). Each instance reads them at start,
then again every `AUTHAPI_KEY_RELOAD_INTERVAL` seconds in a background task, and swaps
its key set when the table changed: a change made with `authapi keys` is in use on
every instance within that interval plus one read of the table. Requests never read
the table. A read that fails keeps the last good key set (and says so, once).

At start an empty table is seeded from AUTHAPI_SIGNING_KEY_FILES, or in development
with a generated key (rollover.seed), which is never written anywhere else; an older
version's plaintext development key file is removed once the table holds it sealed.
If the database cannot be read at start, the instance begins with those configured
keys (in development a key of its own: it can log nobody in without the database
anyway) and takes the database's set at its first good reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from authapi.access_tokens.service import AccessTokens
from authapi.clock import Clock
from authapi.config import Settings
from authapi.db import READ_ONLY, create_sessionmaker, transaction
from authapi.errors import DATABASE_UNAVAILABLE
from authapi.signing import published, rollover
from authapi.signing.keys import KeyConfigError, KeySet, load_keys
from authapi.signing.models import StoredSigningKey

logger = logging.getLogger(__name__)


async def read_keys(maker: async_sessionmaker[AsyncSession]) -> list[StoredSigningKey]:
    async with maker() as db:
        await db.connection(execution_options=READ_ONLY)
        return await rollover.list_keys(db)


async def prepare_keys(settings: Settings, engine: AsyncEngine, kek: bytes, clock: Clock) -> KeySet:
    """The database's key set, after seeding an empty table. KeyConfigError when it
    cannot be used (no key, or a KEK that does not decrypt the current key)."""
    maker = create_sessionmaker(engine)
    rows = await read_keys(maker)
    if not rows:
        # An IntegrityError means another instance seeded the table at the same moment:
        # its keys are as good, and read below.
        with contextlib.suppress(sa_exc.IntegrityError):
            async with transaction(maker) as db:
                await rollover.seed(db, settings, kek, clock.now())
        rows = await read_keys(maker)
    else:
        _warn_about_unused_files(settings, rows)
    keys = rollover.key_set(rows, kek)  # the table's keys open: now the file may go
    rollover.remove_sealed_development_keys(settings, rows)
    return keys


def _warn_about_unused_files(settings: Settings, rows: list[StoredSigningKey]) -> None:
    if not settings.signing_key_files:
        return
    try:
        configured = load_keys(settings)
    except KeyConfigError:
        return
    stored = {row.kid for row in rows}
    if not set(configured.by_kid) <= stored:
        logger.warning(
            "signing keys: AUTHAPI_SIGNING_KEY_FILES holds keys the database does not; "
            "the files only seed an empty key table. Import them with `authapi keys "
            "import FILE` or unset the setting (`authapi keys list` shows the keys in use)"
        )


async def load_signing_keys(
    settings: Settings, engine: AsyncEngine, kek: bytes, clock: Clock
) -> KeySet:
    """The key set an instance starts with (see the module's docstring)."""
    try:
        keys = await prepare_keys(settings, engine, kek, clock)
    except DATABASE_UNAVAILABLE as exc:
        logger.warning(
            "signing keys: cannot read the database (%s); starting with the configured "
            "keys, else the public keys last read, until it can be read",
            type(exc).__name__,
        )
    else:
        published.save(settings, keys)
        return keys
    last_read = published.load(settings)
    if last_read is not None and not settings.signing_key_files:
        return last_read
    try:
        return load_keys(settings)
    except KeyConfigError as exc:
        raise KeyConfigError(f"the database cannot be read, and {exc}") from None


class SigningKeyReloader:
    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        kek: bytes,
        access_tokens: AccessTokens,
        on_change: Callable[[], object] | None = None,
    ) -> None:
        self._settings = settings
        self._interval = settings.key_reload_interval
        self._maker = create_sessionmaker(engine)
        self._kek = kek
        self._access_tokens = access_tokens
        self._on_change = on_change
        self._failing = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._reload_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def reload(self) -> bool:
        """Read the table; swap in its key set if it changed. True if it did."""
        rows = await read_keys(self._maker)
        if rollover.fingerprint(rows) == self._access_tokens.keys.fingerprint:
            return False
        keys = rollover.key_set(rows, self._kek)
        self._access_tokens.keys = keys
        published.save(self._settings, keys)
        if self._on_change is not None:
            self._on_change()
        logger.info(
            "signing keys: %s signs; published: %s",
            keys.signing.kid,
            ", ".join(f"{kid} ({state})" for kid, state in keys.fingerprint),
        )
        return True

    async def _reload_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.reload()
            except Exception as exc:
                if not self._failing:  # once per outage, not every interval
                    logger.warning(
                        "signing keys: reload failed (%s: %s); keeping the last good key set",
                        type(exc).__name__,
                        str(exc).splitlines()[0] if str(exc) else "",
                    )
                self._failing = True
            else:
                if self._failing:
                    logger.info("signing keys: reload works again")
                self._failing = False
