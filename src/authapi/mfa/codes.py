"""Checking a second-factor code — a TOTP code or a recovery code — for a login's MFA
grant and for the step-up before a sensitive change: one place, one set of rules."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from authapi import auth_methods
from authapi.account import mails
from authapi.audit import service as audit
from authapi.auth_methods import AuthMethods
from authapi.client_address import Requester
from authapi.config import Settings
from authapi.errors import WrongCode
from authapi.mail.messages import MailTemplate
from authapi.mfa import recovery_codes, totp
from authapi.mfa.models import TotpFactor
from authapi.mfa.recovery_codes import RecoveryCodeKey
from authapi.ratelimit.service import RateLimiter
from authapi.users.models import User

MAX_CODE_LENGTH = 64  # far above both kinds of code: anything longer is not looked at


@dataclass(frozen=True)
class CodeChecker:
    """Built once at start-up (AppContext.codes)."""

    settings: Settings
    kek: bytes
    recovery_key: RecoveryCodeKey
    limiter: RateLimiter

    async def verify(
        self,
        db: AsyncSession,
        user_id: uuid.UUID,
        code: str,
        *,
        now: datetime,
        requester: Requester,
    ) -> AuthMethods:
        """The methods a right code adds to a login ("otp"); else WrongCode (kept: the
        failure stays counted). The attempt counts against the account's code limit
        before anything is checked, so concurrent guesses cannot overtake it."""
        await self.limiter.admit_otp_attempt(str(user_id))
        code = code.strip()
        if len(code) <= MAX_CODE_LENGTH:
            if await self._totp(db, user_id, code, now) or await self._recovery_code(
                db, user_id, code, now=now, requester=requester
            ):
                return (auth_methods.ONE_TIME_CODE,)
        await db.execute(
            update(TotpFactor)
            .where(TotpFactor.user_id == user_id, TotpFactor.enabled_at.is_not(None))
            .values(consecutive_failures=TotpFactor.consecutive_failures + 1)
        )
        audit.record(
            db, audit.Event.SECOND_FACTOR_FAILED, at=now, requester=requester, user_id=user_id
        )
        raise WrongCode()

    async def _totp(self, db: AsyncSession, user_id: uuid.UUID, code: str, now: datetime) -> bool:
        factor = await db.get(TotpFactor, user_id, populate_existing=True)
        if factor is None or factor.enabled_at is None:
            return False
        if factor.consecutive_failures >= totp.MAX_CONSECUTIVE_FAILURES:
            return False  # only a recovery code or a passkey now
        secret = totp.unseal(self.kek, user_id, factor.sealed_secret)
        step = totp.matching_step(secret, code, now)
        return step is not None and await totp.accept_step(db, user_id, step)

    async def _recovery_code(
        self,
        db: AsyncSession,
        user_id: uuid.UUID,
        code: str,
        *,
        now: datetime,
        requester: Requester,
    ) -> bool:
        left = await recovery_codes.spend(db, self.recovery_key, user_id, code, now)
        if left is None:
            return False
        await db.execute(
            update(TotpFactor).where(TotpFactor.user_id == user_id).values(consecutive_failures=0)
        )
        audit.record(
            db,
            audit.Event.RECOVERY_CODE_USED,
            at=now,
            requester=requester,
            user_id=user_id,
            detail=f"{left} left",
        )
        user = await db.get(User, user_id)
        if user is not None:
            await mails.send(
                db,
                self.settings,
                MailTemplate.RECOVERY_CODE_USED,
                user.email,
                now,
                remaining=str(left),
            )
        return True
