from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from authapi.access_tokens.dependencies import CurrentCaller
from authapi.dependencies import CurrentRequester, DbSession, Now
from authapi.error_bodies import responses
from authapi.errors import AuthenticationRequired, InvalidToken, NotFound
from authapi.openapi import session_link
from authapi.sessions import service
from authapi.sessions.schemas import SessionOut

router = APIRouter(tags=["sessions"])

AUTH_ERRORS = (AuthenticationRequired, InvalidToken)


@router.get(
    "/sessions",
    response_model=list[SessionOut],
    responses={
        **responses(*AUTH_ERRORS, database=True),
        200: {"links": session_link("the first session", "/0/id")},
    },
)
async def list_sessions(caller: CurrentCaller, db: DbSession, now: Now) -> list[SessionOut]:
    """The caller's active sessions, most recently used first."""
    rows = await service.list_active(db, caller.user_id, now)
    return [
        SessionOut(
            id=row.id,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            expires_at=row.expires_at,
            user_agent=row.user_agent,
            ip=row.ip,
            current=row.id == caller.session_id,
        )
        for row in rows
    ]


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=responses(*AUTH_ERRORS, NotFound, validated=True, database=True),
)
async def delete_session(
    session_id: uuid.UUID,
    caller: CurrentCaller,
    db: DbSession,
    now: Now,
    requester: CurrentRequester,
) -> Response:
    """Revoke one of the caller's sessions (404 for anybody else's)."""
    await service.end_own_session(db, caller.user_id, session_id, now=now, requester=requester)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/sessions",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=responses(*AUTH_ERRORS, database=True),
)
async def delete_all_sessions(
    caller: CurrentCaller, db: DbSession, now: Now, requester: CurrentRequester
) -> Response:
    """Log out everywhere: revoke every session of the caller, this one included."""
    await service.end_all_own_sessions(
        db, caller.user_id, current=caller.session_id, now=now, requester=requester
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
