"""Dependencies every domain shares: the app context and the request's transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from authapi.context import AppContext
from authapi.db import transaction


async def get_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


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
