"""A logged-in user registers a passkey: the creation options, then the
authenticator's answer verified and stored (its public key only)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from webauthn import generate_registration_options, options_to_json, verify_registration_response
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from authapi.audit import service as audit
from authapi.client_address import Requester
from authapi.errors import PasskeyNotRegistered, PasskeyTaken
from authapi.expiring import ExpiringCache
from authapi.mfa import factors
from authapi.passkeys import challenges
from authapi.passkeys.challenges import ChallengeRefused, Purpose
from authapi.passkeys.credentials import WEBAUTHN_FAILURES
from authapi.passkeys.models import Passkey
from authapi.passkeys.relying_party import RelyingParty
from authapi.passkeys.service import read
from authapi.users import service as users
from authapi.users.models import User
from authapi.users.schemas import UserOut

# ES256 first: what nearly every authenticator makes; EdDSA and RS256 (Windows Hello).
ALGORITHMS = [
    COSEAlgorithmIdentifier.ECDSA_SHA_256,
    COSEAlgorithmIdentifier.EDDSA,
    COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256,
]
_TRANSPORTS = frozenset(transport.value for transport in AuthenticatorTransport)


def descriptor(passkey: Passkey) -> PublicKeyCredentialDescriptor:
    transports = [
        AuthenticatorTransport(name)
        for name in (passkey.transports or "").split()
        if name in _TRANSPORTS
    ]
    return PublicKeyCredentialDescriptor(id=passkey.credential_id, transports=transports or None)


async def creation_options(
    db: AsyncSession, rp: RelyingParty, user: User, *, now: datetime
) -> dict[str, Any]:
    """PublicKeyCredentialCreationOptionsJSON, as `parseCreationOptionsFromJSON` takes it."""
    registered = await db.scalars(select(Passkey).where(Passkey.user_id == user.id))
    challenge = await challenges.issue(db, Purpose.REGISTRATION, user_id=user.id, now=now)
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=rp.name,
        # A stable handle that says nothing about the person: the user's id.
        user_id=user.id.bytes,
        user_name=user.email,
        user_display_name=user.email,
        challenge=challenge,
        timeout=int(challenges.CHALLENGE_TTL.total_seconds() * 1000),
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[descriptor(passkey) for passkey in registered],
        supported_pub_key_algs=ALGORITHMS,
    )
    document: dict[str, Any] = json.loads(options_to_json(options))
    return document


def _transports(document: dict[str, Any]) -> str | None:
    response = document.get("response")
    listed = response.get("transports") if isinstance(response, dict) else None
    if not isinstance(listed, list):
        return None
    known = [
        name for name in dict.fromkeys(listed) if isinstance(name, str) and name in _TRANSPORTS
    ]
    return " ".join(known) or None


async def register(
    db: AsyncSession,
    rp: RelyingParty,
    profiles: ExpiringCache[str, UserOut],
    user: User,
    *,
    credential: str,
    name: str | None,
    now: datetime,
    requester: Requester,
) -> Passkey:
    """Verify the authenticator's answer to our creation options and store the passkey."""
    document, credential_id, challenge = read(credential)
    try:
        await challenges.consume(db, challenge, Purpose.REGISTRATION, user_id=user.id, now=now)
    except ChallengeRefused as exc:
        raise PasskeyNotRegistered() from exc
    try:
        verified = verify_registration_response(
            credential=document,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=list(rp.origins),
            require_user_verification=True,
            supported_pub_key_algs=ALGORITHMS,
        )
    except WEBAUTHN_FAILURES as exc:
        raise PasskeyNotRegistered() from exc
    if verified.credential_id != credential_id:
        raise PasskeyNotRegistered()
    passkey = Passkey(
        user_id=user.id,
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
        transports=_transports(document),
        name=name or f"Passkey {now:%Y-%m-%d}",
        created_at=now,
        last_used_at=None,
    )
    try:
        # In a savepoint: the unique credential id is the duplicate check, and one
        # registered by anyone, even a moment ago, leaves the transaction usable.
        async with db.begin_nested():
            db.add(passkey)
            await db.flush()
    except IntegrityError as exc:
        raise PasskeyTaken() from exc
    await factors.refresh_flag(db, user.id)
    users.forget_profiles(db, profiles, user.id)
    audit.record(
        db,
        audit.Event.PASSKEY_ADDED,
        at=now,
        requester=requester,
        user_id=user.id,
        detail=str(passkey.id),
    )
    return passkey
