"""The rules behind some settings' values (config.py): database and relay URLs, lists
written in the environment, the defaults worked out from the machine."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "authapi"


def usable_cpus() -> int:
    """The CPUs this process may run on (taskset, cpusets), not all the machine has:
    a hashing thread more than those only waits, holding its argon2 memory."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# The async drivers the service runs on, and how to write a URL for each.
DATABASE_URL_FORMS = (
    "postgresql+asyncpg://USER:PASSWORD@HOST:5432/DATABASE, "
    "or sqlite+aiosqlite:///PATH/TO/FILE.db (unset: the embedded SQLite file)"
)
ASYNC_DRIVERS = {"postgresql": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}


def check_database_url(url: str) -> str:
    """The URL if the service can use it; else a ValueError that says what to write.
    The message never repeats the URL: it may hold a password."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"not a database URL; write {DATABASE_URL_FORMS}") from None
    backend = "postgresql" if parsed.get_backend_name() == "postgres" else parsed.get_backend_name()
    driver = ASYNC_DRIVERS.get(backend)
    if driver is None:
        raise ValueError(f"{backend} is not supported; write {DATABASE_URL_FORMS}")
    if parsed.drivername != driver:
        slashes = "///" if backend == "sqlite" else "//"
        raise ValueError(
            f"the service needs the async driver: write {driver}:{slashes}… instead of "
            f"{parsed.drivername}:{slashes}…"
        )
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        # Each connection would get its own empty in-memory database.
        raise ValueError(f"name the database file: {driver}:///PATH/TO/FILE.db")
    return url


SMTP_SCHEMES = ("smtp", "smtp+starttls", "smtps")


def check_smtp_url(url: str) -> None:
    """A ValueError unless the relay URL can be used; the message never repeats the URL:
    it may hold a password."""
    parts = urlsplit(url)
    if parts.scheme not in SMTP_SCHEMES:
        raise ValueError("AUTHAPI_SMTP_URL must start with smtp://, smtp+starttls:// or smtps://")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError("AUTHAPI_SMTP_URL has a bad port") from None
    if not parts.hostname:
        raise ValueError("AUTHAPI_SMTP_URL names no host")


def split_list(value: object) -> object:
    """Accept `a b`, `a,b` or a list, so lists are easy to write in the environment."""
    if isinstance(value, str):
        return [item for item in value.replace(",", " ").split() if item]
    return value
