"""Mail tokens at service level: what the flows will rely on."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authapi.config import Settings
from authapi.db import transaction
from authapi.errors import InvalidMailToken
from authapi.mail import tokens
from authapi.mail.models import MailToken
from authapi.mail.tokens import MailTokenKey, Purpose
from authapi.users.models import User
from tests.support.clock import FakeClock
from tests.support.factories import add_user

KEY = MailTokenKey(b"k" * 32)


async def issue(
    maker: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: FakeClock,
    user: User,
    purpose: Purpose,
    new_email: str | None = None,
) -> str:
    async with transaction(maker) as db:
        return await tokens.issue(
            db, user, purpose, key=KEY, settings=settings, now=clock.now(), new_email=new_email
        )


async def consume(
    maker: async_sessionmaker[AsyncSession],
    clock: FakeClock,
    token: str,
    purposes: Purpose | tuple[Purpose, ...],
) -> tokens.ConsumedToken:
    async with transaction(maker) as db:
        return await tokens.consume(db, token, purposes, key=KEY, now=clock.now())


class TestIssue:
    @pytest.mark.parametrize(
        ("purpose", "prefix"),
        [
            (Purpose.EMAIL_VERIFICATION, "ev_"),
            (Purpose.EMAIL_CHANGE, "ev_"),
            (Purpose.PASSWORD_RESET, "pr_"),
        ],
    )
    async def test_prefixed_and_long(
        self,
        maker: async_sessionmaker[AsyncSession],
        settings: Settings,
        clock: FakeClock,
        purpose: Purpose,
        prefix: str,
    ) -> None:
        user = await add_user(maker, clock)
        new_email = "new@example.com" if purpose is Purpose.EMAIL_CHANGE else None
        token = await issue(maker, settings, clock, user, purpose, new_email)
        assert token.startswith(prefix)
        assert len(token) - len(prefix) >= 43  # 256 bits in base64url; at least 128 asked
        used = await consume(maker, clock, token, purpose)
        assert used.user.id == user.id
        assert used.new_email == new_email

    async def test_nothing_stored_is_a_usable_token(
        self, maker: async_sessionmaker[AsyncSession], settings: Settings, clock: FakeClock
    ) -> None:
        user = await add_user(maker, clock)
        token = await issue(maker, settings, clock, user, Purpose.PASSWORD_RESET)
        async with transaction(maker) as db:
            row = (await db.execute(select(MailToken))).scalar_one()
        stored = [row.token_hash, row.fingerprint, row.token_hash.hex().encode()]
        secret = token.removeprefix("pr_").encode()
        assert all(secret not in value and token.encode() not in value for value in stored)
        for guess in (row.token_hash.hex(), "pr_" + row.token_hash.hex()):
            with pytest.raises(InvalidMailToken):
                await consume(maker, clock, guess, Purpose.PASSWORD_RESET)
        await consume(maker, clock, token, Purpose.PASSWORD_RESET)  # the real one works


class TestConsume:
    async def test_single_use(
        self, maker: async_sessionmaker[AsyncSession], settings: Settings, clock: FakeClock
    ) -> None:
        user = await add_user(maker, clock)
        token = await issue(maker, settings, clock, user, Purpose.EMAIL_VERIFICATION)
        await consume(maker, clock, token, Purpose.EMAIL_VERIFICATION)
        with pytest.raises(InvalidMailToken):
            await consume(maker, clock, token, Purpose.EMAIL_VERIFICATION)

    @pytest.mark.parametrize("purpose", [Purpose.PASSWORD_RESET, Purpose.EMAIL_VERIFICATION])
    async def test_expires(
        self,
        maker: async_sessionmaker[AsyncSession],
        settings: Settings,
        clock: FakeClock,
        purpose: Purpose,
    ) -> None:
        user = await add_user(maker, clock)
        token = await issue(maker, settings, clock, user, purpose)
        clock.advance(purpose.ttl(settings) - 1)
        fresh = await issue(maker, settings, clock, user, purpose)
        clock.advance(1)
        with pytest.raises(InvalidMailToken):
            await consume(maker, clock, token, purpose)
        await consume(maker, clock, fresh, purpose)  # issued later, still within its TTL

    async def test_voided_by_a_newer_one_of_the_same_purpose(
        self, maker: async_sessionmaker[AsyncSession], settings: Settings, clock: FakeClock
    ) -> None:
        user = await add_user(maker, clock)
        older = await issue(maker, settings, clock, user, Purpose.PASSWORD_RESET)
        verification = await issue(maker, settings, clock, user, Purpose.EMAIL_VERIFICATION)
        newer = await issue(maker, settings, clock, user, Purpose.PASSWORD_RESET)
        with pytest.raises(InvalidMailToken):
            await consume(maker, clock, older, Purpose.PASSWORD_RESET)
        await consume(maker, clock, newer, Purpose.PASSWORD_RESET)
        # Another purpose's token is not voided.
        await consume(maker, clock, verification, Purpose.EMAIL_VERIFICATION)

    async def test_not_for_another_purpose(
        self, maker: async_sessionmaker[AsyncSession], settings: Settings, clock: FakeClock
    ) -> None:
        user = await add_user(maker, clock)
        token = await issue(maker, settings, clock, user, Purpose.EMAIL_VERIFICATION)
        for other in (Purpose.EMAIL_CHANGE, Purpose.PASSWORD_RESET):
            with pytest.raises(InvalidMailToken):
                await consume(maker, clock, token, other)
        used = await consume(
            maker, clock, token, (Purpose.EMAIL_CHANGE, Purpose.EMAIL_VERIFICATION)
        )
        assert used.purpose is Purpose.EMAIL_VERIFICATION

    async def test_reset_token_dies_when_the_password_changes(
        self, maker: async_sessionmaker[AsyncSession], settings: Settings, clock: FakeClock
    ) -> None:
        user = await add_user(maker, clock)
        token = await issue(maker, settings, clock, user, Purpose.PASSWORD_RESET)
        async with transaction(maker) as db:
            stored = await db.get(User, user.id)
            assert stored is not None
            stored.password_hash = "$argon2id$v=19$m=19456,t=2,p=1$b3RoZXJzYWx0$b3RoZXI"
        with pytest.raises(InvalidMailToken):
            await consume(maker, clock, token, Purpose.PASSWORD_RESET)

    async def test_email_change_token_dies_when_the_address_changes(
        self, maker: async_sessionmaker[AsyncSession], settings: Settings, clock: FakeClock
    ) -> None:
        user = await add_user(maker, clock)
        token = await issue(maker, settings, clock, user, Purpose.EMAIL_CHANGE, "a@example.com")
        async with transaction(maker) as db:
            stored = await db.get(User, user.id)
            assert stored is not None
            stored.email = f"other-{user.email}"
        with pytest.raises(InvalidMailToken):
            await consume(maker, clock, token, Purpose.EMAIL_CHANGE)

    @pytest.mark.parametrize("token", ["", "ev_", "pr_x", "garbage", "ev_" + "A" * 43])
    async def test_garbage(
        self, maker: async_sessionmaker[AsyncSession], clock: FakeClock, token: str
    ) -> None:
        with pytest.raises(InvalidMailToken):
            await consume(maker, clock, token, (Purpose.EMAIL_VERIFICATION, Purpose.PASSWORD_RESET))

    def test_the_error_is_the_contracts(self) -> None:
        error = InvalidMailToken()
        assert (error.status_code, error.error) == (400, "invalid_token")
