from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from authapi.audit import service
from authapi.audit.schemas import MAX_EVENT_ID, AuditEventOut, AuditPage, Instant
from authapi.audit.service import Event
from authapi.dependencies import DbSession
from authapi.error_bodies import responses
from authapi.errors import AuthenticationRequired, Forbidden, InvalidToken
from authapi.openapi import session_link, user_links
from authapi.users.dependencies import AdminUser

router = APIRouter(tags=["audit"])


@router.get(
    "/admin/audit",
    response_model=AuditPage,
    responses={
        **responses(AuthenticationRequired, InvalidToken, Forbidden, validated=True, database=True),
        # The session and the user of an event may be null (a failed login for an
        # unknown address has neither): only the newest event's, when it has one.
        200: {
            "links": {
                **session_link("the session of the newest event", "/items/0/session_id"),
                **user_links("the user of the newest event", "/items/0/user_id"),
            }
        },
    },
)
async def list_audit_events(
    _admin: AdminUser,
    db: DbSession,
    event: Event | None = None,
    user_id: uuid.UUID | None = None,
    since: Annotated[Instant | None, Query(description="events at or after")] = None,
    until: Annotated[Instant | None, Query(description="events before")] = None,
    before: Annotated[
        int | None,
        Query(ge=1, le=MAX_EVENT_ID, description="next_before of the previous page"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AuditPage:
    """The audit trail, newest first, filtered and paginated (admin role)."""
    rows = await service.list_events(
        db, limit=limit, before=before, event=event, user_id=user_id, since=since, until=until
    )
    return AuditPage(
        items=[AuditEventOut.model_validate(row) for row in rows],
        next_before=rows[-1].id if len(rows) == limit else None,
    )
