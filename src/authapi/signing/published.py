"""The public half of the last key set read from the database, kept in the data
directory (`published-keys.json`; no secret in it).

An instance that starts while the database is down has no other way to its keys: the
private parts live only in the database, sealed. With this file it still verifies the
access tokens its peers sign and serves the same JWKS; it signs nothing (logins and
refreshes need the database anyway) until its first good reload swaps in the real set.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

from jwt import PyJWK

from authapi.config import Settings
from authapi.signing.keys import KeySet, PublicKey, SigningKey, algorithm_for

logger = logging.getLogger(__name__)

FILE_NAME = "published-keys.json"


def _path(settings: Settings) -> Path:
    return settings.data_dir / FILE_NAME


def save(settings: Settings, keys: KeySet) -> None:
    """Replace the file with `keys`' public parts (atomically: readers never see half)."""
    content = json.dumps({"signing": keys.signing.kid, **keys.jwks()}).encode()
    try:
        fd, tmp = tempfile.mkstemp(dir=settings.data_dir, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.replace(tmp, _path(settings))
    except OSError as exc:  # a read-only data directory must not stop the service
        logger.warning("signing keys: cannot save %s (%s)", FILE_NAME, exc.strerror)


def load(settings: Settings) -> KeySet | None:
    """The saved public keys, or None if there are none (or they are unreadable)."""
    try:
        saved = json.loads(_path(settings).read_text())
        by_kid: dict[str, SigningKey] = {}
        for jwk in saved["keys"]:
            public = PyJWK(jwk).key
            if not isinstance(public, PublicKey):
                return None
            by_kid[jwk["kid"]] = SigningKey(
                kid=jwk["kid"], algorithm=algorithm_for(public), public_key=public
            )
        return KeySet(signing=by_kid[saved["signing"]], by_kid=by_kid)
    except Exception:  # noqa: BLE001 - missing, unreadable or not ours: not usable
        return None
