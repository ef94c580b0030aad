"""TOTP turned on (enrolment, then the first code), turned off, and new recovery codes."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from authapi.audit import service as audit
from authapi.client_address import Requester
from authapi.config import Settings
from authapi.errors import TotpState, WrongCode
from authapi.mfa import factors, recovery_codes, totp
from authapi.mfa.codes import CodeChecker
from authapi.mfa.models import TotpFactor
from authapi.mfa.step_up import StepUp
from authapi.mfa.turned_off import all_factors_off
from authapi.users.models import User


async def start_enrolment(
    db: AsyncSession, settings: Settings, kek: bytes, user: User, *, now: datetime
) -> tuple[str, str]:
    """A new secret waiting for its first code (it replaces one still waiting): the
    secret and its otpauth URI. TotpState if TOTP is on already. The caller has asked
    for the current password."""
    factor = await db.get(TotpFactor, user.id, with_for_update=True)
    if factor is not None and factor.enabled_at is not None:
        raise TotpState()
    secret = totp.new_secret()
    if factor is None:
        factor = TotpFactor(user_id=user.id, consecutive_failures=0)
        db.add(factor)
    factor.sealed_secret = totp.seal(kek, user.id, secret)
    factor.created_at = now
    factor.last_used_step = None
    await db.flush()
    return secret, totp.otpauth_uri(secret, account=user.email, issuer=settings.mail_app_name)


async def confirm(
    db: AsyncSession,
    codes: CodeChecker,
    user: User,
    code: str,
    *,
    now: datetime,
    requester: Requester,
) -> list[str]:
    """The first right code turns TOTP on: the user's recovery codes, to show once."""
    factor = await db.get(TotpFactor, user.id, with_for_update=True)
    if factor is None or factor.enabled_at is not None:
        raise TotpState("No TOTP enrolment is waiting for its first code.")
    # Throttled like every code: 10 guesses per 15 minutes, not a million.
    await codes.limiter.admit_otp_attempt(str(user.id))
    step = totp.matching_step(totp.unseal(codes.kek, user.id, factor.sealed_secret), code, now)
    if step is None or not await totp.accept_step(db, user.id, step):
        raise WrongCode("The code is wrong; check the authenticator's clock, and try the next one.")
    factor.enabled_at = now
    factor.consecutive_failures = 0
    recovery = await recovery_codes.replace(db, codes.recovery_key, user.id, now)
    await factors.refresh_flag(db, user.id)
    audit.record(db, audit.Event.TOTP_ENABLED, at=now, requester=requester, user_id=user.id)
    return recovery


async def disable(
    db: AsyncSession,
    settings: Settings,
    proof: StepUp,
    user: User,
    *,
    session_id: uuid.UUID,
    now: datetime,
    requester: Requester,
) -> None:
    """Turn TOTP off, after the step-up; if it was the last factor, all_factors_off."""
    await proof.check(db, user, now=now, requester=requester)
    removed = await db.execute(
        delete(TotpFactor)
        .where(TotpFactor.user_id == user.id, TotpFactor.enabled_at.is_not(None))
        .returning(TotpFactor.user_id)
    )
    if removed.first() is None:
        raise TotpState("TOTP is not on.")
    audit.record(db, audit.Event.TOTP_DISABLED, at=now, requester=requester, user_id=user.id)
    if not await factors.refresh_flag(db, user.id):
        await all_factors_off(
            db,
            settings,
            user,
            keep_session=session_id,
            removed_by=None,
            now=now,
            requester=requester,
        )


async def new_recovery_codes(
    db: AsyncSession,
    codes: CodeChecker,
    proof: StepUp,
    user: User,
    *,
    now: datetime,
    requester: Requester,
) -> list[str]:
    """A new set, after the step-up; the old set stops working. TotpState if the user
    has no second factor (recovery codes are a way back to one)."""
    await proof.check(db, user, now=now, requester=requester)
    if not user.mfa_enabled:
        raise TotpState(
            "Recovery codes come with a second factor: turn TOTP or a passkey on first."
        )
    recovery = await recovery_codes.replace(db, codes.recovery_key, user.id, now)
    audit.record(
        db, audit.Event.RECOVERY_CODES_REPLACED, at=now, requester=requester, user_id=user.id
    )
    return recovery
