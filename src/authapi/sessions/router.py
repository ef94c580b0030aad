from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from authapi.dependencies import DbSession, Now
from authapi.errors import NO_STORE, AuthenticationRequired, InvalidToken, NotFound, responses
from authapi.sessions import service
from authapi.sessions.schemas import SessionOut
from authapi.sessions.service import RevokeReason
from authapi.tokens.dependencies import CurrentClaims

router = APIRouter(tags=["sessions"])

AUTH_ERRORS = responses(AuthenticationRequired, InvalidToken)


@router.get("/sessions", response_model=list[SessionOut], responses=AUTH_ERRORS)
async def list_sessions(
    claims: CurrentClaims, db: DbSession, now: Now, response: Response
) -> list[SessionOut]:
    """The caller's active sessions, most recently used first."""
    response.headers.update(NO_STORE)
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
    session_id: uuid.UUID, claims: CurrentClaims, db: DbSession, now: Now
) -> Response:
    """Revoke one of the caller's sessions (404 for anybody else's)."""
    session = await service.get_own(db, uuid.UUID(claims["sub"]), session_id)
    if session is None:
        raise NotFound("No such session.")
    await service.revoke(db, session.id, RevokeReason.SESSION_DELETED, now)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/sessions",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=AUTH_ERRORS,
)
async def delete_all_sessions(claims: CurrentClaims, db: DbSession, now: Now) -> Response:
    """Log out everywhere: revoke every session of the caller, this one included."""
    await service.revoke_all(db, uuid.UUID(claims["sub"]), RevokeReason.LOGOUT_EVERYWHERE, now)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
