"""Password hashing with argon2id, off the event loop on threads of a lower priority, a
bounded number at a time (callers hash inside `slot()`).

Cost defaults follow the OWASP password storage cheat sheet (argon2id, m=19 MiB, t=2,
p=1) and are settings. Hashes made with an older cost or scheme still verify and are
replaced on the next successful login (`verify_and_update`).
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TypeVar

from passlib.context import CryptContext

from authapi.config import Settings
from authapi.errors import HashingBusy
from authapi.thread_priority import lower_this_thread

T = TypeVar("T")

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128
HASH_THREAD_PREFIX = "authapi-hash"  # the hashing threads' names (top -H, py-spy)


def _normalize(password: str) -> str:
    # NIST 800-63B §5.1.1.2: normalise Unicode so the same password typed on another
    # keyboard or OS still matches.
    return unicodedata.normalize("NFKC", password)


class PasswordHasher:
    def __init__(self, settings: Settings) -> None:
        self._context = CryptContext(
            # Older schemes a migrated user base may bring; they verify and get upgraded.
            schemes=["argon2", "bcrypt", "pbkdf2_sha256"],
            deprecated=["bcrypt", "pbkdf2_sha256"],
            argon2__type="ID",
            argon2__memory_cost=settings.argon2_memory_cost,
            argon2__time_cost=settings.argon2_time_cost,
            argon2__parallelism=settings.argon2_parallelism,
        )
        # At a lower priority than the event loop: a flood of logins then slows the
        # hashes, not every other request the loop serves (thread_priority.py).
        self._executor = ThreadPoolExecutor(
            max_workers=settings.hash_workers,
            thread_name_prefix=HASH_THREAD_PREFIX,
            initializer=lower_this_thread,
        )
        # Work admitted to hash (running, or waiting for a thread). Bounded: each
        # running argon2id hash holds its memory cost, and a flood must neither exhaust
        # memory nor keep logins waiting for ever; past the bound, 503 at once.
        self.max_pending = settings.hash_workers + settings.hash_queue
        self.pending = 0
        self._dummy_hash: str | None = None

    @property
    def full(self) -> bool:
        """Whether `slot()` would refuse now."""
        return self.pending >= self.max_pending

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Admission for a piece of work that hashes — a whole login, its database
        lookup included, so that a flood queues here, in memory, and not for the
        database's connections or SQLite's lock."""
        if self.full:
            raise HashingBusy()
        self.pending += 1
        try:
            yield
        finally:
            self.pending -= 1

    async def _run(self, func: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, func, *args)

    async def hash(self, password: str) -> str:
        return str(await self._run(self._context.hash, _normalize(password)))

    async def verify(self, password: str, password_hash: str | None) -> tuple[bool, str | None]:
        """Return (matches, replacement hash or None).

        With no hash (unknown user) verify against a dummy hash anyway, so an unknown
        email costs the same time as a wrong password.
        """
        if password_hash is None:
            await self._run(self._context.verify, _normalize(password), await self.dummy_hash())
            return False, None
        try:
            matches, new_hash = await self._run(
                self._context.verify_and_update, _normalize(password), password_hash
            )
        except ValueError:
            # A malformed stored hash, or a legacy bcrypt hash and a password over its
            # 72-byte limit: never a match (bcrypt would otherwise ignore the tail).
            return False, None
        return bool(matches), new_hash

    async def dummy_hash(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash("dummy password for unknown users")
        return self._dummy_hash

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
