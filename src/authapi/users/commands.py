"""`authapi create-user`: an account made from the command line (the first admin, say),
by the same rules as registration."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from authapi.clock import Clock
from authapi.config import Settings
from authapi.db import create_engine, create_sessionmaker, transaction
from authapi.users import service
from authapi.users.models import ROLES
from authapi.users.passwords import PasswordHasher
from authapi.users.schemas import UserCreate


async def create_user(settings: Settings, body: UserCreate, role: str) -> str:
    """The new user's id; `EmailTaken` if the address is registered already."""
    engine = create_engine(settings)
    hasher = PasswordHasher(settings)
    try:
        async with transaction(create_sessionmaker(engine)) as db:
            user = await service.create_user(
                db,
                hasher,
                email=body.email,
                password=body.password,
                now=Clock().now(),
                role=role,
                # The operator vouches for the address: no mail is sent, and the account
                # logs in under AUTHAPI_REQUIRE_VERIFIED_EMAIL (an operator's first admin).
                email_verified=True,
            )
        return str(user.id)
    finally:
        hasher.close()
        await engine.dispose()


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    func: Callable[[argparse.Namespace], None],
) -> None:
    create_user = commands.add_parser(
        "create-user", help="create a user; the password is read from a prompt or stdin"
    )
    create_user.add_argument("email")
    create_user.add_argument("--role", choices=ROLES, default="user")
    create_user.set_defaults(func=func)
