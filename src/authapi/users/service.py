"""Users: registration, credential checks, password changes."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from authapi.errors import EmailTaken, InvalidGrant, WrongPassword
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
    user = User(
        id=uuid.uuid4(),
        email=email,
        password_hash=await hasher.hash(password),
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


async def authenticate(
    db: AsyncSession, hasher: PasswordHasher, *, username: str, password: str
) -> User:
    """The password grant's check. Every failure is the same InvalidGrant, reached
    after one hash verification, so neither answer nor timing tells which part failed."""
    try:
        email = normalize_email(username)
    except ValueError:
        email = None
    user = None
    if email is not None:
        user = await db.scalar(select(User).where(User.email == email))
    matches, new_hash = await hasher.verify(password, user.password_hash if user else None)
    if user is None or not matches or not user.is_active:
        raise InvalidGrant("Invalid email or password.")
    if new_hash is not None:
        user.password_hash = new_hash
        await db.flush()
    return user


async def change_password(
    db: AsyncSession, hasher: PasswordHasher, user: User, *, current: str, new: str
) -> None:
    matches, _ = await hasher.verify(current, user.password_hash)
    if not matches:
        raise WrongPassword()
    user.password_hash = await hasher.hash(new)
    await db.flush()
