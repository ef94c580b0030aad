"""The step-up before a sensitive change (the password, the address, the account's
deletion, a second factor turned off, new recovery codes): the current password and,
for a user with a second factor, a code or a passkey too — a stolen session plus a
phished password must not be enough to take the account over."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from authapi.account import current_password
from authapi.client_address import Requester
from authapi.errors import PasskeyRefused, StepUpRequired, WrongCode
from authapi.mfa.codes import CodeChecker
from authapi.passkeys import service as passkeys
from authapi.passkeys.relying_party import RelyingParty
from authapi.ratelimit.service import RateLimiter
from authapi.users.models import User
from authapi.users.passwords import PasswordHasher


@dataclass(frozen=True)
class StepUp:
    """What a request presents for a sensitive change, and what checks it (built by the
    route from the app's parts and the body: mfa/dependencies.py)."""

    hasher: PasswordHasher
    limiter: RateLimiter
    codes: CodeChecker
    relying_party: RelyingParty | None
    password: str
    otp: str | None = None
    passkey: str | None = None  # an assertion's JSON, after step-up options
    device_cookie: str | None = None

    async def check(
        self, db: AsyncSession, user: User, *, now: datetime, requester: Requester
    ) -> None:
        """Raise unless the password is right and, when the user has a second factor,
        so is the code or passkey: WrongPassword / WrongCode (403 invalid_credentials),
        StepUpRequired (403 mfa_required) when no second factor came."""
        await current_password.check(
            db,
            self.hasher,
            self.limiter,
            user,
            self.password,
            now=now,
            requester=requester,
            device_cookie=self.device_cookie,
        )
        if not user.mfa_enabled:
            return
        if self.otp:
            await self.codes.verify(db, user.id, self.otp, now=now, requester=requester)
        elif self.passkey:
            await self._passkey(db, user, self.passkey, now=now, requester=requester)
        else:
            raise StepUpRequired()

    async def _passkey(
        self, db: AsyncSession, user: User, credential: str, *, now: datetime, requester: Requester
    ) -> None:
        if self.relying_party is None:
            raise WrongCode("Passkeys are off on this server.")
        try:
            await passkeys.verify_second_factor(
                db, self.relying_party, credential, user_id=user.id, now=now, requester=requester
            )
        except PasskeyRefused as refused:
            raise WrongCode(refused.error_description) from None
