"""`authapi issuer show|set`: the issuer recorded in the database (record.py)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from urllib.parse import urlsplit

from authapi.clock import Clock
from authapi.config import Settings
from authapi.db import create_engine, create_sessionmaker
from authapi.issuer.record import recorded_issuer, set_issuer


def issuer_url(text: str) -> str:
    """An argparse type: an absolute http(s) URL, without a trailing slash (as the
    AUTHAPI_ISSUER setting is stored)."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(
            "must be an http:// or https:// URL, e.g. https://auth.example.com"
        )
    return text.rstrip("/")


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    func: Callable[[argparse.Namespace], None],
) -> None:
    issuer = commands.add_parser(
        "issuer",
        help="the issuer recorded for the instances sharing the database",
        description="The first instance to start records its issuer (AUTHAPI_ISSUER); "
        "instances that start with another one log an error. To change the issuer on "
        "purpose, record the new one here, then restart every instance with it.",
    )
    actions = issuer.add_subparsers(dest="issuer_command", required=True)
    actions.add_parser("show", help="print the recorded issuer")
    change = actions.add_parser("set", help="record a new issuer")
    change.add_argument("url", type=issuer_url, help="the new AUTHAPI_ISSUER")
    issuer.set_defaults(func=func)


async def run(args: argparse.Namespace, settings: Settings) -> str:
    engine = create_engine(settings)
    maker = create_sessionmaker(engine)
    try:
        if args.issuer_command == "set":
            previous = await set_issuer(maker, args.url, Clock().now())
            return f"issuer recorded: {args.url} (was: {previous or 'none'})"
        return await recorded_issuer(maker) or "no issuer recorded yet"
    finally:
        await engine.dispose()
