"""TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps), with the secret sealed at rest.

A code is accepted for the current step and one step either side (clock drift), and
each step at most once per account: the step of an accepted code is stored, and only a
later step is accepted after it (pyotp's `verify` alone accepts the same code again)."""

from __future__ import annotations

import hmac
import io
import uuid
from datetime import datetime

import pyotp
import segno
from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from authapi.mfa.models import TotpFactor
from authapi.signing.sealing import seal_bytes, unseal_bytes

STEP_SECONDS = 30
DIGITS = 6
DRIFT_STEPS = 1
# NIST SP 800-63B §5.2.2: at most 100 wrong codes in a row; after them only a recovery
# code or a passkey signs in (and resets the count).
MAX_CONSECUTIVE_FAILURES = 100
_SECRET_CHARS = 32  # base32: 160 bits, RFC 4226's recommended length


def new_secret() -> str:
    return pyotp.random_base32(_SECRET_CHARS)


def otpauth_uri(secret: str, *, account: str, issuer: str) -> str:
    """The `otpauth://totp/...` URI authenticator apps read (from the QR code)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=account, issuer_name=issuer
    )


def qr_svg(uri: str) -> str:
    """The URI as a QR code, an SVG document: no XML declaration, so that it can be
    inlined, but with its namespace, so that it also shows on its own (an `<img>` with
    a data: URL, which a strict Content-Security-Policy allows, unlike inline markup)."""
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", xmldecl=False, nl=False, scale=4, border=2)
    return out.getvalue().decode()


def _aad(user_id: uuid.UUID) -> bytes:
    # Bound to its user: a sealed secret copied onto another user's row does not open.
    return b"authapi totp " + user_id.bytes


def seal(kek: bytes, user_id: uuid.UUID, secret: str) -> bytes:
    return seal_bytes(kek, _aad(user_id), secret.encode())


def unseal(kek: bytes, user_id: uuid.UUID, sealed: bytes) -> str:
    return unseal_bytes(kek, _aad(user_id), sealed).decode()


def step_of(now: datetime) -> int:
    return int(now.timestamp()) // STEP_SECONDS


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The step within the drift whose code `code` is (the latest, should two be),
    else None. Every candidate is compared, in constant time."""
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    otp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = step_of(now)
    found = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(otp.generate_otp(step), code):
            found = step
    return found


async def accept_step(db: AsyncSession, user_id: uuid.UUID, step: int) -> bool:
    """Spend `step` for the user's TOTP: true unless that step (or a later one) was
    spent already. One conditional UPDATE, so two requests with one code cannot both
    pass."""
    spent = await db.execute(
        update(TotpFactor)
        .where(
            TotpFactor.user_id == user_id,
            or_(TotpFactor.last_used_step.is_(None), TotpFactor.last_used_step < step),
        )
        .values(last_used_step=step, consecutive_failures=0)
        .returning(TotpFactor.user_id)
    )
    return spent.first() is not None
