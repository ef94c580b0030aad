"""The audit trail: who did what to which account, when, and from where."""

from __future__ import annotations

import enum
import logging
import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authapi import metrics
from authapi.audit.models import AuditEvent
from authapi.client_address import Requester
from authapi.db import WROTE, delete_batch
from authapi.errors import DATABASE_UNAVAILABLE

logger = logging.getLogger(__name__)


class Event(enum.StrEnum):
    USER_REGISTERED = "user_registered"
    LOGIN_SUCCEEDED = "login_succeeded"
    LOGIN_FAILED = "login_failed"
    REFRESH = "refresh"
    REUSE_DETECTED = "reuse_detected"
    LOGOUT = "logout"
    REVOKE = "revoke"  # RFC 7009 /revoke
    SESSION_REVOKED = "session_revoked"  # DELETE /sessions/{id}
    ALL_SESSIONS_REVOKED = "all_sessions_revoked"  # DELETE /sessions
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - an event name
    RATE_LIMITED = "rate_limited"
    ADMIN_ACTION = "admin_action"
    # The account flows by mail (account/): requested, completed, and a refused link
    # (its token unknown, used, expired or voided; recorded once a minute per address).
    EMAIL_VERIFICATION_REQUESTED = "email_verification_requested"
    EMAIL_VERIFIED = "email_verified"
    PASSWORD_RESET_REQUESTED = "password_reset_requested"  # noqa: S105 - an event name
    PASSWORD_RESET = "password_reset"  # noqa: S105 - an event name; the reset done
    MAIL_TOKEN_REFUSED = "mail_token_refused"  # noqa: S105 - an event name
    EMAIL_CHANGE_REQUESTED = "email_change_requested"
    EMAIL_CHANGED = "email_changed"
    # Kept after the account is gone, with its id only (no address).
    ACCOUNT_DELETED = "account_deleted"
    # Passkeys (passkeys/); a counter that went backwards hints at a cloned authenticator.
    PASSKEY_ADDED = "passkey_added"
    PASSKEY_REMOVED = "passkey_removed"
    PASSKEY_COUNTER_REGRESSED = "passkey_counter_regressed"
    # Codes (mfa/). Never a secret or a code in the detail.
    TOTP_ENABLED = "totp_enabled"
    TOTP_DISABLED = "totp_disabled"
    RECOVERY_CODE_USED = "recovery_code_used"
    RECOVERY_CODES_REPLACED = "recovery_codes_replaced"
    SECOND_FACTOR_FAILED = "second_factor_failed"
    # The last one went; an admin's removal or `authapi mfa reset`: detail "by=<id>|cli".
    SECOND_FACTORS_OFF = "second_factors_off"
    # Second factors (mfa/): a login asked for one, a wrong one (or a dead mfa_token).
    MFA_CHALLENGED = "mfa_challenged"
    MFA_FAILED = "mfa_failed"


def record(
    db: AsyncSession,
    event: Event,
    *,
    at: datetime,
    requester: Requester,
    user_id: uuid.UUID | None = None,
    session_id: uuid.UUID | None = None,
    detail: str | None = None,
) -> None:
    """Add an event to the request's transaction: it is kept, and counted in the
    metrics, if the request commits."""
    db.add(
        AuditEvent(
            at=at,
            event=event.value,
            user_id=user_id,
            session_id=session_id,
            ip=requester.ip,
            user_agent=requester.user_agent,
            detail=detail,
        )
    )
    metrics.count_audit_event(db, event.value)


# Built once; `insert_now` sends it without the unit of work (see there).
_INSERT = insert(cast(Table, AuditEvent.__table__))


async def insert_now(
    db: AsyncSession,
    event: Event,
    *,
    at: datetime,
    requester: Requester,
    user_id: uuid.UUID | None = None,
    session_id: uuid.UUID | None = None,
    detail: str | None = None,
) -> None:
    """`record`, sent at once as one prebuilt INSERT in the request's transaction
    instead of through the unit of work's flush at commit, which took about an eighth
    of a refresh's CPU (bench/README.md, profiles). Kept, and counted, if the request
    commits, like `record`."""
    connection = await db.connection()
    await connection.execute(
        _INSERT,
        {
            "at": at,
            "event": event.value,
            "user_id": user_id,
            "session_id": session_id,
            "ip": requester.ip,
            "user_agent": requester.user_agent,
            "detail": detail,
        },
    )
    db.info[WROTE] = True  # a Core statement passes no ORM event that would note it
    metrics.count_audit_event(db, event.value)


async def record_now(
    maker: async_sessionmaker[AsyncSession],
    event: Event,
    *,
    at: datetime,
    requester: Requester,
    **fields: Any,
) -> None:
    """Record in a transaction of its own, for requests that are refused before or
    without theirs (rate limits). Best effort: an unreachable database must not turn
    a 429 into a 503."""
    try:
        async with maker() as db:
            record(db, event, at=at, requester=requester, **fields)
            await db.commit()
    except DATABASE_UNAVAILABLE as exc:
        logger.warning("audit event %s not recorded: %s", event.value, type(exc).__name__)


async def list_events(
    db: AsyncSession,
    *,
    limit: int,
    before: int | None = None,
    event: Event | None = None,
    user_id: uuid.UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[AuditEvent]:
    """Newest first; pass the last id seen as `before` for the next page."""
    query = listing(
        limit=limit, before=before, event=event, user_id=user_id, since=since, until=until
    )
    return list(await db.scalars(query))


def listing(
    *,
    limit: int,
    before: int | None = None,
    event: Event | None = None,
    user_id: uuid.UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Select[AuditEvent]:
    """The query of `list_events`. By user or by event it is a backward range of the
    index `(user_id, id)` or `(event, id)`, however long the trail."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if before is not None:
        query = query.where(AuditEvent.id < before)
    if event is not None:
        query = query.where(AuditEvent.event == event.value)
    if user_id is not None:
        query = query.where(AuditEvent.user_id == user_id)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    return query


async def prune_batch(db: AsyncSession, older_than: datetime, limit: int) -> int:
    # Oldest first, off the index of times: with no order PostgreSQL takes the batch
    # from a scan of the table, which passes over every event the batches before
    # deleted (dead until vacuumed), so each batch of a large prune took longer.
    return await delete_batch(db, AuditEvent.at, older_than, limit, oldest_first=True)
