from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from authapi.access_tokens.dependencies import CurrentClaims
from authapi.audit import service as audit
from authapi.dependencies import CurrentRequester, DbSession, Now
from authapi.errors import AuthenticationRequired, InvalidToken, NotFound, responses
from authapi.sessions import service
from authapi.sessions.models import RevokeReason
from authapi.sessions.schemas import SessionOut

router = APIRouter(tags=["sessions"])

AUTH_ERRORS = responses(AuthenticationRequired, InvalidToken)


@router.get("/sessions", response_model=list[SessionOut], responses=AUTH_ERRORS)
async def list_sessions(claims: CurrentClaims, db: DbSession, now: Now) -> list[SessionOut]:
    """The caller's active sessions, most recently used first."""
    current = uuid.UUID(claims["sid"])
    rows = await service.list_active(db, uuid.UUID(claims["sub"]), now)
    return [
        SessionOut(
            id=row.id,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            expires_at=row.expires_at,
            user_agent=row.user_agent,
            ip=row.ip,
            current=row.id == current,
        )
        for row in rows
    ]


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**AUTH_ERRORS, **responses(NotFound)},
)
async def delete_session(
    session_id: uuid.UUID,
    claims: CurrentClaims,
    db: DbSession,
    now: Now,
    requester: CurrentRequester,
) -> Response:
    """Revoke one of the caller's sessions (404 for anybody else's)."""
    session = await service.get_own(db, uuid.UUID(claims["sub"]), session_id)
    if session is None:
        raise NotFound("No such session.")
    await service.end_session(
        db,
        session.id,
        reason=RevokeReason.SESSION_DELETED,
        event=audit.Event.SESSION_REVOKED,
        now=now,
        requester=requester,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/sessions",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=AUTH_ERRORS,
)
async def delete_all_sessions(
    claims: CurrentClaims, db: DbSession, now: Now, requester: CurrentRequester
) -> Response:
    """Log out everywhere: revoke every session of the caller, this one included."""
    user_id = uuid.UUID(claims["sub"])
    await service.revoke_all(db, user_id, RevokeReason.LOGOUT_EVERYWHERE, now)
    audit.record(
        db,
        audit.Event.ALL_SESSIONS_REVOKED,
        at=now,
        requester=requester,
        user_id=user_id,
        session_id=uuid.UUID(claims["sid"]),
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
