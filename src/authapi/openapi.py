"""The OpenAPI document, made to say what the app really answers.

FastAPI documents what it sees in a route's signature and `responses=`. Some answers come
from elsewhere, the same for every route, and are documented here once:

- 422 from the one validation handler (errors.py) has an `ErrorBody`, not FastAPI's
  `HTTPValidationError`; on the token endpoints it is a 400 instead (RFC 6749 §5.2);
- a body that cannot be parsed at all is a 400, one over the size limit a 413
  (middleware.py);
- a credential in the query string is a 400 on every route (dependencies.py);
- a route that opens a transaction answers 503 while the database is down.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, get_args

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant

from authapi.dependencies import DbSession
from authapi.errors import TOKEN_ENDPOINTS, ErrorBody

_ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
_OPEN_TRANSACTION = get_args(DbSession)[1].dependency


def _answer(description: str) -> dict[str, Any]:
    return {"description": description, "content": _ERROR_BODY}


def _document(path: str, operation: dict[str, Any]) -> None:
    answers: dict[str, Any] = operation.setdefault("responses", {})
    if "422" in answers:  # FastAPI's, for any route that takes input
        if path in TOKEN_ENDPOINTS:
            del answers["422"]
            answers.setdefault("400", _answer("invalid_request"))["content"] = _ERROR_BODY
        else:
            answers["422"] = _answer("invalid_request: the input does not validate")
    if "requestBody" in operation:
        answers.setdefault(
            "400", _answer("invalid_request: an unreadable body, or a URL credential")
        )
        answers.setdefault("413", _answer("request_too_large"))
    answers.setdefault("400", _answer("invalid_request: a credential in the URL"))


def _opens_transaction(dependant: Dependant) -> bool:
    return any(
        sub.call is _OPEN_TRANSACTION or _opens_transaction(sub) for sub in dependant.dependencies
    )


def _routes_with_transaction(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(path, method) of each route that opens a transaction."""
    # FastAPI 0.16x keeps included routers whole; earlier versions copied their routes.
    iterate = getattr(fastapi.routing, "iter_route_contexts", iter)
    for route in iterate(app.routes):
        dependant = getattr(route, "dependant", None)
        if isinstance(dependant, Dependant) and _opens_transaction(dependant):
            for method in getattr(route, "methods", ()):
                yield getattr(route, "path_format", ""), method.lower()


def document_errors(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        paths: dict[str, dict[str, Any]] = schema.get("paths", {})
        for path, operations in paths.items():
            for operation in operations.values():
                _document(path, operation)
        for path, method in _routes_with_transaction(app):
            operation = paths.get(path, {}).get(method)
            if operation is not None:
                answers = operation["responses"]
                answers.setdefault("503", _answer("temporarily_unavailable: the database is down"))
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        components.setdefault(
            "ErrorBody", ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
        )
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
