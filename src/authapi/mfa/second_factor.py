"""The two halves of a login with a second factor, around the mfa_token (tokens.py):
`challenge` (the password was right: no session, an mfa_token instead) and `complete`
(the mfa_token and a second factor: whose login it finishes). The session itself is
made by oauth/issuing.log_in, as for any login."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from authapi.audit import service as audit
from authapi.auth_methods import AuthMethods
from authapi.client_address import Requester
from authapi.errors import InvalidGrant, InvalidRequest, MfaRequired, SecondFactorRefused, WrongCode
from authapi.mfa import factors, tokens
from authapi.mfa.codes import CodeChecker
from authapi.mfa.tokens import MfaTokenKey, PendingLogin
from authapi.passkeys import service as passkeys
from authapi.passkeys.relying_party import RelyingParty
from authapi.users import service as users
from authapi.users.models import User


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
    codes: CodeChecker,
    rp: RelyingParty | None,
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
            db, codes, rp, user, otp=otp, credential=credential, now=now, requester=requester
        )
        await tokens.finish(db, pending)
    except (InvalidGrant, WrongCode):
        audit.record(
            db, audit.Event.MFA_FAILED, at=now, requester=requester, user_id=pending.user_id
        )
        raise SecondFactorRefused() from None
    return pending, user, second


async def _verify_second_factor(
    db: AsyncSession,
    codes: CodeChecker,
    rp: RelyingParty | None,
    user: User,
    *,
    otp: str | None,
    credential: str | None,
    now: datetime,
    requester: Requester,
) -> AuthMethods:
    """The one place a second factor is checked for the MFA grant: a passkey's
    assertion (after POST /passkeys/options with the mfa_token), else a code."""
    if credential is not None:
        if rp is None:
            raise InvalidGrant("Passkeys are off on this server.")
        return await passkeys.verify_second_factor(
            db, rp, credential, user_id=user.id, now=now, requester=requester
        )
    if otp is None:
        raise InvalidRequest("otp or credential is required")
    return await codes.verify(db, user.id, otp, now=now, requester=requester)
