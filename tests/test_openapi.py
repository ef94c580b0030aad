"""The routes' own `responses=` declarations (error_bodies.responses) keep the OpenAPI document
true: what the declarations could forget is checked here against the routes."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any, get_args

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant

from authapi.dependencies import DbSession
from authapi.error_bodies import TOKEN_ENDPOINTS

OPEN_TRANSACTION = get_args(DbSession)[1].dependency


def _opens_transaction(dependant: Dependant) -> bool:
    """Through the DbSession dependency, or without it: the route opens one itself
    (db.transaction) or hands the sessionmaker to what does, as the hot /refresh does."""
    call = dependant.call
    if inspect.isfunction(call) and "context.sessionmaker" in inspect.getsource(call):
        return True
    return any(
        sub.call is OPEN_TRANSACTION or _opens_transaction(sub) for sub in dependant.dependencies
    )


def test_a_route_that_opens_its_own_transaction_is_seen(app: FastAPI) -> None:
    assert ("/refresh", "post") in [(p, m) for p, m, d in _routes(app) if _opens_transaction(d)]


def _routes(app: FastAPI) -> Iterator[tuple[str, str, Dependant]]:
    for route in fastapi.routing.iter_route_contexts(app.routes):
        dependant = getattr(route, "dependant", None)
        if isinstance(dependant, Dependant):
            for method in getattr(route, "methods", ()):
                yield getattr(route, "path_format", ""), method.lower(), dependant


def _document(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def test_every_route_that_opens_a_transaction_documents_its_503(app: FastAPI) -> None:
    paths = _document(app)["paths"]
    transactional = [(p, m) for p, m, d in _routes(app) if _opens_transaction(d)]
    assert transactional
    missing = [(p, m) for p, m in transactional if "503" not in paths[p][m]["responses"]]
    assert not missing


def test_every_route_with_a_body_documents_413_and_every_route_400(app: FastAPI) -> None:
    for path, operations in _document(app)["paths"].items():
        for method, operation in operations.items():
            answers = operation["responses"]
            assert "400" in answers, (path, method)
            if "requestBody" in operation:
                assert "413" in answers, (path, method)


def test_validation_errors_are_documented_in_our_body_only(app: FastAPI) -> None:
    document = _document(app)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            answer = operation["responses"].get("422")
            if path in TOKEN_ENDPOINTS:
                assert answer is None, (path, method)
            elif answer is not None:
                schema = answer["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, method)
