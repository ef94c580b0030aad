"""Checking a passkey assertion (a passwordless login, a second factor), and a user's
passkeys listed and removed.

`verify_assertion` is the one place an assertion is accepted: its challenge used up,
its credential known (and the user's, where a user is expected), its origin, RP ID,
user-verification flag and signature checked by py_webauthn, and its signature
counter moved forward."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from webauthn import verify_authentication_response

from authapi import auth_methods
from authapi.audit import service as audit
from authapi.client_address import Requester
from authapi.config import Settings
from authapi.errors import InvalidRequest, NotFound, PasskeyRefused
from authapi.expiring import ExpiringCache
from authapi.mfa import factors
from authapi.mfa.turned_off import all_factors_off
from authapi.passkeys import challenges, credentials
from authapi.passkeys.challenges import ChallengeRefused, Purpose
from authapi.passkeys.credentials import WEBAUTHN_FAILURES, MalformedCredential
from authapi.passkeys.models import Passkey
from authapi.passkeys.relying_party import RelyingParty
from authapi.users import service as users
from authapi.users.models import User
from authapi.users.schemas import UserOut

if TYPE_CHECKING:  # at run time it would import this module back
    from authapi.mfa.step_up import StepUp


@dataclass(frozen=True)
class VerifiedPasskey:
    passkey: Passkey
    kind: str  # auth_methods.HARDWARE_KEY or SOFTWARE_KEY: the RFC 8176 `amr` entry


def kind_of(passkey: Passkey) -> str:
    """A synced (backup-eligible) passkey is a software key; one bound to its device a
    hardware key (RFC 8176 §2)."""
    return auth_methods.SOFTWARE_KEY if passkey.backup_eligible else auth_methods.HARDWARE_KEY


def read(credential: str) -> tuple[dict[str, Any], bytes, bytes]:
    """The credential's JSON, its id and its signed challenge; InvalidRequest if it
    is not a credential at all."""
    try:
        document = credentials.load(credential)
        return document, credentials.credential_id(document), credentials.signed_challenge(document)
    except MalformedCredential as exc:
        raise InvalidRequest(str(exc)) from exc


async def verify_assertion(
    db: AsyncSession,
    rp: RelyingParty,
    credential: str,
    *,
    purpose: Purpose,
    user_id: uuid.UUID | None,
    now: datetime,
    requester: Requester,
) -> VerifiedPasskey:
    """The passkey that signed this assertion, its counter and last use updated; else
    PasskeyRefused (InvalidRequest for what is no credential's JSON)."""
    document, credential_id, challenge = read(credential)
    try:
        await challenges.consume(db, challenge, purpose, user_id=user_id, now=now)
    except ChallengeRefused as exc:
        raise PasskeyRefused() from exc
    # Locked: two assertions of one passkey at once must not both move the counter
    # from the same value (SQLite takes the write lock for the challenge's DELETE).
    passkey = await db.scalar(
        select(Passkey).where(Passkey.credential_id == credential_id).with_for_update()
    )
    if passkey is None or (user_id is not None and passkey.user_id != user_id):
        raise PasskeyRefused()
    if purpose is Purpose.LOGIN:
        # A discoverable login names its user only through the credential: the
        # authenticator's user handle (our user id) must be the credential's owner.
        try:
            handle = credentials.user_handle(document)
        except MalformedCredential as exc:
            raise InvalidRequest(str(exc)) from exc
        if handle != passkey.user_id.bytes:
            raise PasskeyRefused()
    try:
        verified = verify_authentication_response(
            credential=document,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=list(rp.origins),
            credential_public_key=passkey.public_key,
            # The counter is compared below, after the signature: only a genuine
            # assertion with a stale counter (a cloned authenticator) is audited as one.
            credential_current_sign_count=0,
            require_user_verification=True,
        )
    except WEBAUTHN_FAILURES as exc:
        raise PasskeyRefused() from exc
    counted = verified.new_sign_count > 0 or passkey.sign_count > 0
    if counted and verified.new_sign_count <= passkey.sign_count:
        audit.record(
            db,
            audit.Event.PASSKEY_COUNTER_REGRESSED,
            at=now,
            requester=requester,
            user_id=passkey.user_id,
            detail=str(passkey.id),
        )
        raise PasskeyRefused()
    passkey.sign_count = verified.new_sign_count
    passkey.last_used_at = now
    await db.flush()
    return VerifiedPasskey(passkey=passkey, kind=kind_of(passkey))


async def verify_second_factor(
    db: AsyncSession,
    rp: RelyingParty,
    credential: str,
    *,
    user_id: uuid.UUID,
    now: datetime,
    requester: Requester,
) -> auth_methods.AuthMethods:
    """A passkey of this user as the second factor (after a password, or the step-up
    of a sensitive change): the methods it adds to the login's, else PasskeyRefused."""
    verified = await verify_assertion(
        db,
        rp,
        credential,
        purpose=Purpose.SECOND_FACTOR,
        user_id=user_id,
        now=now,
        requester=requester,
    )
    return (verified.kind,)


async def list_passkeys(db: AsyncSession, user_id: uuid.UUID) -> list[Passkey]:
    rows = await db.scalars(
        select(Passkey).where(Passkey.user_id == user_id).order_by(Passkey.created_at, Passkey.id)
    )
    return list(rows)


async def delete_passkey(db: AsyncSession, user_id: uuid.UUID, passkey_id: uuid.UUID) -> None:
    """Delete one of the user's passkeys; NotFound for an unknown id or another's."""
    deleted = await db.scalar(
        delete(Passkey)
        .where(Passkey.id == passkey_id, Passkey.user_id == user_id)
        .returning(Passkey.id)
    )
    if deleted is None:
        raise NotFound("No such passkey.")


async def remove(
    db: AsyncSession,
    settings: Settings,
    profiles: ExpiringCache[str, UserOut],
    proof: StepUp,
    user: User,
    passkey_id: uuid.UUID,
    *,
    session_id: uuid.UUID,
    now: datetime,
    requester: Requester,
) -> None:
    """Remove one of the user's passkeys, after the step-up (a stolen access token
    alone must not take a factor away); if it was the last factor, all_factors_off."""
    await proof.check(db, user, now=now, requester=requester)
    await delete_passkey(db, user.id, passkey_id)
    users.forget_profiles(db, profiles, user.id)
    audit.record(
        db,
        audit.Event.PASSKEY_REMOVED,
        at=now,
        requester=requester,
        user_id=user.id,
        detail=str(passkey_id),
    )
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
