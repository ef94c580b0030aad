"""Dependencies every domain shares: the app context and the request's transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from authapi.client_address import Requester, identify_requester
from authapi.context import AppContext
from authapi.db import transaction
from authapi.errors import InvalidRequest


def app_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


async def get_context(request: Request) -> AppContext:
    return app_context(request)


Context = Annotated[AppContext, Depends(get_context)]


async def _db_session(context: Context) -> AsyncIterator[AsyncSession]:
    async with transaction(context.sessionmaker) as db:
        yield db


# scope="function": the commit happens before the response is sent, so a 2xx never
# hides a failed commit.
DbSession = Annotated[AsyncSession, Depends(_db_session, scope="function")]


async def _now(context: Context) -> datetime:
    return context.clock.now()


Now = Annotated[datetime, Depends(_now)]


async def _requester(request: Request, context: Context) -> Requester:
    return identify_requester(request, context.settings.trusted_proxies)


CurrentRequester = Annotated[Requester, Depends(_requester)]


# Secrets that must only travel in a body or a header: a URL ends up in logs, browser
# history and Referer headers.
SECRET_PARAMETERS = frozenset(
    {
        "password",
        "current_password",
        "new_password",
        "refresh_token",
        "access_token",
        "token",
        "client_secret",
    }
)


async def refuse_secrets_in_query(request: Request) -> None:
    """App-wide: a request with a secret in its query string is refused, not served."""
    # The raw query string first: empty for nearly every request, and cheap to look at.
    if request.scope["query_string"] and not SECRET_PARAMETERS.isdisjoint(
        request.query_params.keys()
    ):
        raise InvalidRequest("Credentials must not be sent in the URL; send them in the body.")
