"""A ceremony's challenge: random, kept server-side for five minutes, used once.

It is found again by the challenge inside the `clientDataJSON` the authenticator
signed, and deleted by the same statement that finds it (DELETE … RETURNING): of two
requests presenting one challenge at once, exactly one gets the row."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from authapi.passkeys.models import PasskeyChallenge

CHALLENGE_BYTES = 32
CHALLENGE_TTL = timedelta(minutes=5)


class Purpose(StrEnum):
    REGISTRATION = "registration"
    LOGIN = "login"  # passwordless: no user named before the assertion
    SECOND_FACTOR = "second_factor"  # after a password (or a step-up): bound to the user


class ChallengeRefused(Exception):  # noqa: N818 - the services turn it into their refusal
    """Unknown, used, expired, or issued for another ceremony or another user."""


async def issue(
    db: AsyncSession, purpose: Purpose, *, user_id: uuid.UUID | None, now: datetime
) -> bytes:
    challenge = secrets.token_bytes(CHALLENGE_BYTES)
    db.add(
        PasskeyChallenge(
            challenge=challenge,
            purpose=purpose.value,
            user_id=user_id,
            expires_at=now + CHALLENGE_TTL,
        )
    )
    await db.flush()
    return challenge


async def consume(
    db: AsyncSession,
    challenge: bytes,
    purpose: Purpose,
    *,
    user_id: uuid.UUID | None,
    now: datetime,
) -> None:
    """Use the challenge up, or raise ChallengeRefused. It is deleted whatever it was
    issued for, so one presented for the wrong ceremony cannot be tried again."""
    row = (
        await db.execute(
            delete(PasskeyChallenge)
            .where(PasskeyChallenge.challenge == challenge)
            .returning(
                PasskeyChallenge.purpose, PasskeyChallenge.user_id, PasskeyChallenge.expires_at
            )
        )
    ).one_or_none()
    if row is None:
        raise ChallengeRefused()
    if row.purpose != purpose.value or row.user_id != user_id or row.expires_at <= now:
        raise ChallengeRefused()
