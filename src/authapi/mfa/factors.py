"""Which second factors a user has, and the `users.mfa_enabled` flag that sums them up.

The flag is what the password grant, the User body and the admin list read; it is
worked out again from the factors' own tables by `refresh_flag`, in the transaction of
every change to a factor, so it cannot drift from them."""

from __future__ import annotations

import uuid

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from authapi.mfa.models import RecoveryCode, TotpFactor
from authapi.passkeys.models import Passkey
from authapi.users.models import User

# The methods the contract's `mfa_methods` names.
TOTP = "totp"
RECOVERY_CODE = "recovery_code"
PASSKEY = "passkey"


async def methods(db: AsyncSession, user_id: uuid.UUID) -> list[str]:
    """The second factors the user can log in with now, in a fixed order."""
    has_totp = exists().where(TotpFactor.user_id == user_id, TotpFactor.enabled_at.is_not(None))
    has_codes = exists().where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
    has_passkey = exists().where(Passkey.user_id == user_id)
    row = (await db.execute(select(has_totp, has_codes, has_passkey))).one()
    return [
        name for name, present in zip((TOTP, RECOVERY_CODE, PASSKEY), row, strict=True) if present
    ]


async def refresh_flag(db: AsyncSession, user_id: uuid.UUID) -> bool:
    """Set `users.mfa_enabled` from the factors the user has (TOTP on, or a passkey:
    recovery codes alone are no factor, only a way back in); return it."""
    present = set(await methods(db, user_id))
    enabled = bool(present & {TOTP, PASSKEY})
    await db.execute(update(User).where(User.id == user_id).values(mfa_enabled=enabled))
    return enabled
