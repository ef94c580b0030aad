"""`authapi keys …`: generate, import, list, roll over and retire signing keys.

The commands change the table; every instance picks the change up by itself within
AUTHAPI_KEY_RELOAD_INTERVAL (reload.py). Run them with the service's settings: the
database, the key-encryption key, and the TTL, JWKS max-age and reload interval that
the waits are computed from.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, get_args

from authapi.clock import Clock
from authapi.config import Settings, SigningAlgorithm
from authapi.db import create_engine, create_sessionmaker, transaction
from authapi.signing import rollover
from authapi.signing.keys import generate_key, load_key_file
from authapi.signing.models import KeyState, StoredSigningKey
from authapi.signing.reload import prepare_keys, read_keys
from authapi.signing.rollover import Waits
from authapi.signing.sealing import load_key_encryption_key


async def prepare(settings: Settings) -> None:
    """Before `authapi serve` starts its workers: seed an empty key table, and make sure
    the keys in it can be used (KeyConfigError if not)."""
    engine = create_engine(settings)
    try:
        await prepare_keys(settings, engine, load_key_encryption_key(settings), Clock())
    finally:
        await engine.dispose()


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    func: Callable[[argparse.Namespace], None],
) -> None:
    keys = commands.add_parser(
        "keys",
        help="manage the signing keys: generate, import, list, rollover, retire",
        description="Manage the signing keys. Exit status: 0 done, 1 refused or failed, "
        "3 not yet (the message says from when it is allowed).",
    )
    actions = keys.add_subparsers(dest="keys_command", required=True)

    generate = actions.add_parser("generate", help="add a new next key (published, not signing)")
    generate.add_argument(
        "--algorithm",
        choices=get_args(SigningAlgorithm),
        help="default: AUTHAPI_SIGNING_ALGORITHM",
    )

    import_ = actions.add_parser("import", help="add a PEM or JWK private key as the next key")
    import_.add_argument("file", type=Path)
    import_.add_argument(
        "--current", action="store_true", help="make it the current key at once (a rollover)"
    )
    import_.add_argument("--force", action="store_true", help="with --current: skip the wait")

    listing = actions.add_parser("list", help="the keys, their states and dates")
    listing.add_argument("--json", action="store_true", help="as JSON")

    # `rotate` was its name before "rotate" came to mean refresh tokens only; runbooks
    # and scripts that still say it keep working.
    rollover = actions.add_parser(
        "rollover",
        aliases=["rotate"],
        help="the next key becomes current, the current one retired",
    )
    rollover.add_argument(
        "--force",
        action="store_true",
        help="even if resource servers may not have the next key yet",
    )

    retire = actions.add_parser("retire", help="remove a retired (or next) key from the JWKS")
    retire.add_argument("kid")
    retire.add_argument(
        "--force",
        action="store_true",
        help="even if tokens it signed may still be valid (they are then refused)",
    )
    keys.set_defaults(func=func)


async def run(args: argparse.Namespace, settings: Settings, now: datetime) -> str:
    """Do what `args` ask; the text to print. Raises rollover.KeyChangeRefused (or its
    KeyChangeTooEarly) and keys.KeyConfigError with a message for the operator."""
    engine = create_engine(settings)
    maker = create_sessionmaker(engine)
    waits = Waits.from_settings(settings)
    try:
        if args.keys_command == "list":
            return _listing(await read_keys(maker), waits, as_json=args.json)
        if args.keys_command == "retire":
            async with transaction(maker) as db:
                removed = await rollover.remove(db, args.kid, now, waits, force=args.force)
            return (
                f"removed {removed.state} key {removed.kid}: instances stop publishing it "
                f"within {settings.key_reload_interval:g} s"
            )
        kek = load_key_encryption_key(settings)
        async with transaction(maker) as db:
            if args.keys_command == "generate":
                key = generate_key(args.algorithm or settings.signing_algorithm)
                row = await rollover.add_key(db, key, kek, now, waits)
                return _added(row, waits)
            if args.keys_command == "import":
                key = load_key_file(args.file)
                row = await rollover.add_key(
                    db, key, kek, now, waits, current=args.current, force=args.force
                )
                return _added(row, waits)
            promoted, retired = await rollover.roll_over(db, kek, now, waits, force=args.force)
            return _rolled_over(promoted, retired, waits)
    finally:
        await engine.dispose()


def _added(row: StoredSigningKey, waits: Waits) -> str:
    if row.state == KeyState.CURRENT:
        return f"added {row.algorithm} key {row.kid} as the current key: it signs"
    return (
        f"added {row.algorithm} key {row.kid} as the next key: published, not signing.\n"
        f"`authapi keys rollover` from {_instant(waits.roll_over_allowed_at(row))} on"
    )


def _rolled_over(promoted: StoredSigningKey, retired: StoredSigningKey | None, waits: Waits) -> str:
    lines = [
        f"{promoted.kid} is the current key: instances sign with it within the reload interval"
    ]
    if retired is not None:
        lines.append(
            f"{retired.kid} is retired (still published); `authapi keys retire -- {retired.kid}` "
            f"from {_instant(waits.remove_allowed_at(retired))} on"
        )
    return "\n".join(lines)


def _instant(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else "-"


def _json_instant(value: datetime | None) -> str | None:
    return _instant(value) if value is not None else None


def _allowed_at(row: StoredSigningKey, waits: Waits) -> datetime | None:
    """When the key's next step (roll over to it, remove it) is allowed."""
    if row.state == KeyState.NEXT:
        return waits.roll_over_allowed_at(row)
    if row.state == KeyState.RETIRED:
        return waits.remove_allowed_at(row)
    return None


def _listing(rows: list[StoredSigningKey], waits: Waits, *, as_json: bool) -> str:
    if as_json:
        items: list[dict[str, Any]] = [
            {
                "kid": row.kid,
                "algorithm": row.algorithm,
                "state": row.state,
                "created_at": _instant(row.created_at),
                "activated_at": _json_instant(row.activated_at),
                "retired_at": _json_instant(row.retired_at),
                "next_step_from": _json_instant(_allowed_at(row, waits)),
            }
            for row in rows
        ]
        return json.dumps(items, indent=2)
    header = ("KID", "ALG", "STATE", "CREATED", "SIGNING SINCE", "RETIRED", "NEXT STEP FROM")
    table = [header] + [
        (
            row.kid,
            row.algorithm,
            row.state,
            _instant(row.created_at),
            _instant(row.activated_at),
            _instant(row.retired_at),
            _instant(_allowed_at(row, waits)),
        )
        for row in rows
    ]
    widths = [max(len(line[column]) for line in table) for column in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in table
    )
