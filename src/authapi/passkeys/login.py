"""Logging in with a passkey: the request options (`POST /passkeys/options`), and the
passkey grant (`grant_type=urn:authapi:params:oauth:grant-type:passkey`), which starts
a session with no password, its `amr` the passkey's kind and "mfa" (a passkey with
user verification is something owned and something known or been, RFC 8176)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from webauthn import generate_authentication_options, options_to_json
from webauthn.helpers.structs import UserVerificationRequirement

from authapi import auth_methods
from authapi.audit import service as audit
from authapi.client_address import Requester
from authapi.errors import PasskeyRefused
from authapi.oauth.issuing import Issued, TokenIssuer, log_in, refuse_unverified, resolve_scope
from authapi.passkeys import challenges
from authapi.passkeys.challenges import Purpose
from authapi.passkeys.models import Passkey
from authapi.passkeys.registration import descriptor
from authapi.passkeys.relying_party import RelyingParty
from authapi.passkeys.service import verify_assertion
from authapi.sessions.service import SessionPolicy
from authapi.users.models import User

PASSKEY_GRANT = "urn:authapi:params:oauth:grant-type:passkey"
LOGIN_DETAIL = "passkey"  # the audit detail that tells a passkey login from a password's


async def request_options(
    db: AsyncSession, rp: RelyingParty, *, user_id: uuid.UUID | None, now: datetime
) -> dict[str, Any]:
    """PublicKeyCredentialRequestOptionsJSON. With no user: a discoverable-credential
    login (no allowCredentials: the authenticator offers what it holds for the RP).
    With one (the second factor after a password): that user's passkeys only, and the
    challenge bound to them."""
    allowed: list[Passkey] = []
    purpose = Purpose.LOGIN
    if user_id is not None:
        purpose = Purpose.SECOND_FACTOR
        allowed = list(await db.scalars(select(Passkey).where(Passkey.user_id == user_id)))
    challenge = await challenges.issue(db, purpose, user_id=user_id, now=now)
    options = generate_authentication_options(
        rp_id=rp.id,
        challenge=challenge,
        timeout=int(challenges.CHALLENGE_TTL.total_seconds() * 1000),
        allow_credentials=[descriptor(passkey) for passkey in allowed],
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    document: dict[str, Any] = json.loads(options_to_json(options))
    return document


async def passkey_grant(
    db: AsyncSession,
    *,
    issuer: TokenIssuer,
    policy: SessionPolicy,
    rp: RelyingParty,
    allowed_scopes: list[str],
    credential: str,
    scope: str | None,
    now: datetime,
    requester: Requester,
    require_verified_email: bool = False,
) -> Issued:
    granted = resolve_scope(scope, allowed_scopes)
    try:
        verified = await verify_assertion(
            db, rp, credential, purpose=Purpose.LOGIN, user_id=None, now=now, requester=requester
        )
    except PasskeyRefused:
        audit.record(db, audit.Event.LOGIN_FAILED, at=now, requester=requester, detail=LOGIN_DETAIL)
        raise
    user = await db.get(User, verified.passkey.user_id)
    if user is None or not user.is_active:
        audit.record(
            db,
            audit.Event.LOGIN_FAILED,
            at=now,
            requester=requester,
            user_id=verified.passkey.user_id,
            detail=LOGIN_DETAIL,
        )
        raise PasskeyRefused()
    refuse_unverified(db, user, required=require_verified_email, now=now, requester=requester)
    amr = (verified.kind, auth_methods.MULTIPLE_FACTORS)
    return await log_in(
        db,
        issuer,
        policy,
        user,
        scope=granted,
        amr=amr,
        now=now,
        requester=requester,
        detail=LOGIN_DETAIL,
    )
