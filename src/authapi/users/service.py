"""Users: registration, credential checks, password changes."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from authapi.db import end_read_only_transaction
from authapi.errors import EmailTaken, LoginFailed, WrongPassword
from authapi.users.emails import normalize_email
from authapi.users.models import User
from authapi.users.passwords import PasswordHasher


async def create_user(
    db: AsyncSession,
    hasher: PasswordHasher,
    *,
    email: str,
    password: str,
    now: datetime,
    role: str = "user",
) -> User:
    """Create a user; `email` must already be normalised (the schema does it)."""
    await end_read_only_transaction(db)
    async with hasher.slot():
        password_hash = await hasher.hash(password)
    user = User(
        id=uuid.uuid4(),
        email=email,
        password_hash=password_hash,
        role=role,
        is_active=True,
        created_at=now,
    )
    db.add(user)
    try:
        # A savepoint, so a duplicate leaves the caller's transaction usable.
        async with db.begin_nested():
            await db.flush()
    except IntegrityError:
        raise EmailTaken() from None
    return user


async def get_user(db: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await db.get(User, user_id)


async def id_for_email(db: AsyncSession, email: str) -> uuid.UUID | None:
    return await db.scalar(select(User.id).where(User.email == email))


def login_name(username: str) -> str:
    """The account a login names: the normalised email, or the lowercased input when it
    is not an email address (no account has it, but it is throttled all the same)."""
    try:
        return normalize_email(username)
    except ValueError:
        return username.strip().lower()


async def authenticate(
    db: AsyncSession, hasher: PasswordHasher, *, email: str, password: str
) -> User:
    """The password grant's check, for a `login_name`. Every failure is the same
    InvalidGrant, reached after one hash verification, so neither the answer nor its
    timing tells which part failed."""
    async with hasher.slot():
        user = await db.scalar(select(User).where(User.email == email))
        await end_read_only_transaction(db)
        matches, new_hash = await hasher.verify(password, user.password_hash if user else None)
    if user is None or not matches or not user.is_active:
        raise LoginFailed(user.id if user else None)
    if new_hash is not None:
        user.password_hash = new_hash
        await db.flush()
    return user


async def change_password(
    db: AsyncSession, hasher: PasswordHasher, user: User, *, current: str, new: str
) -> None:
    await end_read_only_transaction(db)
    async with hasher.slot():
        matches, _ = await hasher.verify(current, user.password_hash)
        if not matches:
            raise WrongPassword()
        new_hash = await hasher.hash(new)
    user.password_hash = new_hash
    await db.flush()
