"""The data directory is a folder of secrets: only the service's own user may read it.

In development it holds the refresh-token key and the key-encryption key (which opens
the signing keys sealed in the database), and by default the embedded SQLite database
(password hashes, emails, client addresses) with its -wal and -shm files; in
production whatever else is written there (mail files). So the folder is 0700 and
every file in it 0600: the process runs with umask 077, and what an older version or
another tool left readable to the group or to others is tightened at start, with a
warning. A folder this user cannot tighten (another user's) is refused.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from sqlalchemy.engine import make_url

from authapi.config import Settings

logger = logging.getLogger(__name__)

# Nothing the process creates is readable by the group or by others.
PRIVATE_UMASK = 0o077
_SHARED_BITS = 0o077
# SQLite keeps a database's changes beside it, as readable as the database itself.
_SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


class DataDirError(Exception):
    """The data directory cannot be made private; the message says why and what to do."""


def secure_data_dir(settings: Settings) -> Path:
    """Set the process's umask, create the data directory 0700 (or tighten it and what
    it holds), and tighten an embedded SQLite file kept elsewhere. The folder's path."""
    os.umask(PRIVATE_UMASK)
    folder = settings.data_dir
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    _tighten(folder.resolve())  # the folder itself, also when AUTHAPI_DATA_DIR is a link
    for parent, folders, files in os.walk(folder):
        for name in folders + files:
            _tighten(Path(parent) / name)
    for path in _sqlite_files(settings):
        if path.exists():
            _tighten(path)
    return folder


def _tighten(path: Path) -> None:
    status = path.lstat()
    if stat.S_ISLNK(status.st_mode) or not status.st_mode & _SHARED_BITS:
        return  # a link's own mode means nothing; this one is private already
    mode = stat.S_IMODE(status.st_mode)
    try:
        path.chmod(mode & ~_SHARED_BITS)
    except OSError as exc:
        raise DataDirError(
            f"{path} is readable by other users (mode {mode:04o}) and cannot be made "
            f"private ({exc.strerror}): it holds secrets. Run authapi as its owner, or "
            "point AUTHAPI_DATA_DIR at a folder of authapi's own user"
        ) from None
    logger.warning(
        "data directory: %s was mode %04o, readable by other users; now %04o (it holds secrets)",
        path,
        mode,
        mode & ~_SHARED_BITS,
    )


def _sqlite_files(settings: Settings) -> list[Path]:
    """The SQLite database of AUTHAPI_DATABASE_URL and its companions, if it is one."""
    if not settings.is_sqlite:
        return []
    database = make_url(settings.resolved_database_url).database
    if not database or database == ":memory:":
        return []
    return [Path(database + suffix) for suffix in _SQLITE_COMPANIONS]
