"""The two halves of a login with a second factor, around the mfa_token (tokens.py):
`challenge` (the password was right: no session, an mfa_token instead) and `complete`
(the mfa_token and a second factor: whose login it finishes). The session itself is
made by oauth/service.log_in, as for any login."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from authapi.audit import service as audit
from authapi.auth_methods import AuthMethods
from authapi.client_address import Requester
from authapi.errors import InvalidGrant, InvalidRequest, MfaRequired, SecondFactorRefused
from authapi.mfa import factors, tokens
from authapi.mfa.tokens import MfaTokenKey, PendingLogin
from authapi.users import service as users
from authapi.users.models import User


class CodeVerifier(Protocol):
    """Checks a TOTP or recovery code (engineer "codes"' `context.codes`): the methods
    it proves (("otp",)), or it raises a domain error (InvalidGrant or a subclass)."""

    async def verify(
        self,
        db: AsyncSession,
        user_id: uuid.UUID,
        code: str,
        *,
        now: datetime,
        requester: Requester,
    ) -> AuthMethods: ...


async def challenge(
    db: AsyncSession,
    key: MfaTokenKey,
    *,
    user_id: uuid.UUID,
    scope: str,
    amr: AuthMethods,
    now: datetime,
    requester: Requester,
) -> None:
    """Raise MfaRequired with a new mfa_token; the token's row and the audit record are
    kept though the request answers with an error."""
    token = await tokens.issue(db, key, user_id=user_id, scope=scope, amr=amr, now=now)
    audit.record(db, audit.Event.MFA_CHALLENGED, at=now, requester=requester, user_id=user_id)
    raise MfaRequired(token, await factors.methods(db, user_id))


async def complete(
    db: AsyncSession,
    key: MfaTokenKey,
    codes: CodeVerifier | None,
    mfa_token: str,
    *,
    otp: str | None,
    credential: str | None,
    now: datetime,
    requester: Requester,
) -> tuple[PendingLogin, User, AuthMethods]:
    """The login an mfa_token stands for, once its second factor is right; the token
    spent. The attempt is counted first and stays counted whatever follows."""
    pending = await tokens.spend_attempt(db, key, mfa_token, now=now)
    user = await users.get_user(db, pending.user_id)
    try:
        if user is None or not user.is_active:
            raise InvalidGrant()  # disabled (or deleted) since the password step
        second = await _verify_second_factor(
            db, codes, user, otp=otp, credential=credential, now=now, requester=requester
        )
        await tokens.finish(db, pending)
    except InvalidGrant:
        audit.record(
            db, audit.Event.MFA_FAILED, at=now, requester=requester, user_id=pending.user_id
        )
        raise SecondFactorRefused() from None
    return pending, user, second


async def _verify_second_factor(
    db: AsyncSession,
    codes: CodeVerifier | None,
    user: User,
    *,
    otp: str | None,
    credential: str | None,
    now: datetime,
    requester: Requester,
) -> AuthMethods:
    """The one place a second factor is checked for the MFA grant."""
    if credential is not None:
        # The passkey second factor plugs in HERE (engineer "passkeys"): verify the
        # assertion against the user's passkeys and a "second_factor" challenge, and
        # return (kind,) with kind "hwk" or "swk".
        raise InvalidRequest("A passkey as the second factor is not supported yet.")
    if otp is None or codes is None:
        raise InvalidRequest("A code as the second factor is not supported yet.")
    return await codes.verify(db, user.id, otp, now=now, requester=requester)
