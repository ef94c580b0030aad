"""The exception handlers: every error a request meets, whoever raised it, answered with
the one error body of `error_bodies.error_response` (the domain errors are errors.py).
Here is only which handler answers what, and what the log then says."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from authapi.error_bodies import TOKEN_ENDPOINTS, domain_error_response, error_response
from authapi.errors import DATABASE_UNAVAILABLE, DomainError, ServiceUnavailable

logger = logging.getLogger(__name__)


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)  # noqa: S101 - registered for DomainError only
    return domain_error_response(exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    problems = [
        f"{'.'.join(str(part) for part in err.get('loc', ()))}: {err.get('msg', 'invalid')}"
        for err in exc.errors()
    ]
    status = 400 if request.url.path in TOKEN_ENDPOINTS else 422
    return error_response(status, "invalid_request", "; ".join(problems) or "invalid input")


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(
        exc.status_code, "invalid_request"
    )
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return error_response(exc.status_code, code, str(exc.detail), headers)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> str:
    """Every method of the resource: Starlette's 405 names only those of the first route
    with the path (`GET /sessions` hid `DELETE /sessions`)."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    )


def _described(exc: Exception) -> str:
    """The error's type and the driver's own first line, e.g. `OperationalError: attempt
    to write a readonly database` or `OperationalError: database or disk is full`, so the
    log names the cause. SQLAlchemy's own text of the error adds the statement and its
    parameters, which may hold an email or a hash: those are never logged."""
    error: BaseException = exc
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        # asyncpg's own error lies under SQLAlchemy's adapter of it.
        error = exc.orig.__cause__ or exc.orig
    lines = str(error).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


async def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    # Every DBAPIError reaches here (see DATABASE_UNAVAILABLE), but only one whose
    # connection was lost (or refused writes: db.create_engine marks those too) is an
    # outage. Any other (a constraint, a bad statement) is a bug: re-raised, it reaches
    # the catch-all as before (a 500, and the server logs it).
    if (
        isinstance(exc, sa_exc.DBAPIError)
        and not isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
        and not exc.connection_invalidated
    ):
        raise exc
    logger.warning("database unavailable: %s", _described(exc))
    unavailable = ServiceUnavailable("The database is unavailable; try again shortly.")
    return await _domain_error(_request, unavailable)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error", exc_info=exc)
    return error_response(500, "server_error", "Internal error.")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for exc_type in DATABASE_UNAVAILABLE:
        app.add_exception_handler(exc_type, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected)
