from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from authapi.dependencies import Context
from authapi.errors import ErrorBody

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"model": ErrorBody, "description": "database down"}})
async def readyz(context: Context) -> dict[str, str]:
    """The database answers (else 503)."""
    async with context.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    return {"status": "ok"}
