"""The MFA grant of /token (`urn:authapi:params:oauth:grant-type:mfa`): the second step
of a login whose password was right, with the password grant's `mfa_token` and a second
factor. The HTTP side stays in router.py; the rules in mfa/second_factor.py."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from authapi import auth_methods
from authapi.client_address import Requester
from authapi.context import AppContext
from authapi.errors import InvalidRequest
from authapi.mfa import second_factor
from authapi.oauth.issuing import Issued, log_in
from authapi.oauth.schemas import TokenForm

GRANT_TYPE = "urn:authapi:params:oauth:grant-type:mfa"


async def grant(
    db: AsyncSession,
    context: AppContext,
    form: TokenForm,
    *,
    now: datetime,
    requester: Requester,
) -> Issued:
    if not form.mfa_token:
        raise InvalidRequest("mfa_token is required")
    if (form.otp is None) == (form.credential is None):
        raise InvalidRequest("exactly one of otp and credential is required")
    pending, user, second = await second_factor.complete(
        db,
        context.mfa_tokens,
        context.codes,
        context.relying_party,
        form.mfa_token,
        otp=form.otp,
        credential=form.credential,
        now=now,
        requester=requester,
    )
    return await log_in(
        db,
        context.token_issuer,
        context.session_policy,
        user,
        scope=pending.scope,
        amr=auth_methods.with_second_factor(pending.amr, second),
        now=now,
        requester=requester,
        detail="mfa",
    )
