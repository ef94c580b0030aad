"""`users.service` on its own, on both databases: creating a user stores an argon2id
hash of the password and refuses a taken email; authenticating returns the user for the
right password and one LoginFailed for everything else. Over HTTP: test_router.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from passlib.hash import pbkdf2_sha256
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from authapi.config import Settings
from authapi.errors import EmailTaken, LoginFailed
from authapi.users.models import User
from authapi.users.passwords import PasswordHasher
from authapi.users.service import authenticate, create_user
from tests.support.factories import PASSWORD, new_email
from tests.support.settings import CHEAP_HASHES

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {**CHEAP_HASHES}


@pytest.fixture
def hasher(settings: Settings) -> Iterator[PasswordHasher]:
    hasher = PasswordHasher(settings)
    try:
        yield hasher
    finally:
        hasher.close()


async def stored(db: AsyncSession, email: str) -> User:
    """The user's row as the database now holds it."""
    query = select(User).where(User.email == email).execution_options(populate_existing=True)
    user = await db.scalar(query)
    assert user is not None
    return user


@pytest.fixture
async def alice(db_session: AsyncSession, hasher: PasswordHasher) -> User:
    """A user with the password PASSWORD, committed (as registration leaves one)."""
    user = await create_user(db_session, hasher, email=new_email(), password=PASSWORD, now=NOW)
    await db_session.commit()
    return user


class TestCreateUser:
    async def test_stores_an_argon2id_hash_of_the_password(
        self, db_session: AsyncSession, hasher: PasswordHasher
    ) -> None:
        email = new_email()

        await create_user(db_session, hasher, email=email, password=PASSWORD, now=NOW)

        user = await stored(db_session, email)
        assert user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash
        assert await hasher.verify(PASSWORD, user.password_hash) == (True, None)
        assert (user.role, user.is_active, user.created_at) == ("user", True, NOW)

    async def test_with_a_role(self, db_session: AsyncSession, hasher: PasswordHasher) -> None:
        email = new_email()

        await create_user(db_session, hasher, email=email, password=PASSWORD, now=NOW, role="admin")

        assert (await stored(db_session, email)).role == "admin"

    async def test_a_taken_email_is_refused_and_the_first_user_keeps_it(
        self, db_session: AsyncSession, hasher: PasswordHasher, alice: User
    ) -> None:
        email = alice.email
        with pytest.raises(EmailTaken):
            await create_user(db_session, hasher, email=email, password="another one", now=NOW)

        # The duplicate was refused inside a savepoint: the transaction goes on.
        count = select(func.count()).select_from(User).where(User.email == email)
        assert await db_session.scalar(count) == 1
        first = await stored(db_session, email)
        assert await hasher.verify(PASSWORD, first.password_hash) == (True, None)


class TestAuthenticate:
    async def test_the_right_password_returns_the_user(
        self, db_session: AsyncSession, hasher: PasswordHasher, alice: User
    ) -> None:
        user = await authenticate(db_session, hasher, email=alice.email, password=PASSWORD)

        assert user.id == alice.id

    async def test_a_wrong_password_is_login_failed_for_the_user(
        self, db_session: AsyncSession, hasher: PasswordHasher, alice: User
    ) -> None:
        with pytest.raises(LoginFailed) as raised:
            await authenticate(db_session, hasher, email=alice.email, password="not my password")

        assert raised.value.user_id == alice.id

    async def test_an_unknown_email_is_login_failed_for_nobody(
        self, db_session: AsyncSession, hasher: PasswordHasher
    ) -> None:
        with pytest.raises(LoginFailed) as raised:
            await authenticate(db_session, hasher, email=new_email(), password=PASSWORD)

        assert raised.value.user_id is None

    async def test_a_disabled_user_is_login_failed_even_with_the_right_password(
        self, db_session: AsyncSession, hasher: PasswordHasher, alice: User
    ) -> None:
        alice.is_active = False
        await db_session.commit()

        with pytest.raises(LoginFailed) as raised:
            await authenticate(db_session, hasher, email=alice.email, password=PASSWORD)

        assert raised.value.user_id == alice.id

    async def test_an_older_scheme_is_verified_and_replaced_by_argon2id(
        self, db_session: AsyncSession, hasher: PasswordHasher, alice: User
    ) -> None:
        alice.password_hash = pbkdf2_sha256.hash(PASSWORD)
        await db_session.commit()

        await authenticate(db_session, hasher, email=alice.email, password=PASSWORD)

        upgraded = (await stored(db_session, alice.email)).password_hash
        assert upgraded.startswith("$argon2id$")
        assert await hasher.verify(PASSWORD, upgraded) == (True, None)
