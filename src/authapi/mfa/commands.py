"""`authapi mfa reset EMAIL`: every second factor of a user removed and their sessions
ended, as DELETE /admin/users/{id}/mfa does, for an operator whose only admin lost
their authenticator."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from authapi.client_address import Requester
from authapi.clock import Clock
from authapi.config import Settings
from authapi.db import create_engine, create_sessionmaker, transaction
from authapi.mfa import removal
from authapi.mfa.removal import Removed
from authapi.users import service as users

# The audit trail's requester for a change made at the command line.
CLI = Requester(ip="127.0.0.1", user_agent="authapi mfa reset")  # this machine


async def reset(settings: Settings, email: str) -> Removed | None:
    """What was removed; None for an unknown email."""
    engine = create_engine(settings)
    try:
        async with transaction(create_sessionmaker(engine)) as db:
            user_id = await users.id_for_email(db, users.login_name(email))
            if user_id is None:
                return None
            return await removal.remove_all(
                db, settings, user_id, actor="cli", now=Clock().now(), requester=CLI
            )
    finally:
        await engine.dispose()


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    func: Callable[[argparse.Namespace], None],
) -> None:
    mfa = commands.add_parser("mfa", help="manage users' second factors")
    actions = mfa.add_subparsers(dest="mfa_command", required=True)
    reset_parser = actions.add_parser(
        "reset", help="remove every second factor of a user and end their sessions"
    )
    reset_parser.add_argument("email")
    reset_parser.set_defaults(func=func)
