"""The OpenAPI document, made to say what the app really answers.

FastAPI documents what it sees in a route's signature and `responses=`. Some answers come
from elsewhere, the same for every route, and are documented here once:

- 422 from the one validation handler (errors.py) has an `ErrorBody`, not FastAPI's
  `HTTPValidationError`; on the token endpoints it is a 400 instead (RFC 6749 §5.2);
- a body that cannot be parsed at all is a 400, one over the size limit a 413
  (middleware.py);
- a credential in the query string is a 400 on every route (dependencies.py);
- a route that opens a transaction answers 503 while the database is down.

It also makes two things exact that FastAPI writes loosely:

- an optional JSON body (`/refresh`, `/logout`: the body, or else the cookie) is
  documented as what it is when sent; a JSON `null` is no such body, and is refused;
- the links between operations (OpenAPI 3 `links`) are written out, each from a field
  that always holds a value: a link from an audit event to its session would be fed
  the `null` of every event that has none.
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


def _body_or_nothing(operation: dict[str, Any]) -> None:
    """`anyOf: [X, null]` of a body that may be left out becomes X."""
    body = operation.get("requestBody")
    if body is None or body.get("required"):
        return
    for media in body.get("content", {}).values():
        choices = media.get("schema", {}).get("anyOf", [])
        sent = [choice for choice in choices if choice != {"type": "null"}]
        if len(sent) == 1 and len(choices) == 2:
            media["schema"] = sent[0]


def _operation(path: str, method: str) -> str:
    escaped = path.replace("~", "~0").replace("/", "~1")
    return f"#/paths/{escaped}/{method}"


def _link(path: str, method: str, description: str, **parameters: str) -> dict[str, Any]:
    return {
        "operationRef": _operation(path, method),
        "description": description,
        "parameters": parameters,
    }


_USER = "/admin/users/{user_id}"
_USER_SESSIONS = "/admin/users/{user_id}/sessions"
# (path, method, status) of a response -> the operations its values can be sent to.
# Explicit links stand in for the ones a tool would infer from field names, which may
# take their values from every item of a list, nulls included.
LINKS: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {
    ("/users", "post", "201"): {
        "UpdateUser": _link(_USER, "patch", "the new user", user_id="$response.body#/id"),
        "EndUserSessions": _link(
            _USER_SESSIONS, "delete", "the new user", user_id="$response.body#/id"
        ),
    },
    ("/admin/users", "get", "200"): {
        "UpdateUser": _link(_USER, "patch", "the first user", user_id="$response.body#/items/0/id"),
        "EndUserSessions": _link(
            _USER_SESSIONS, "delete", "the first user", user_id="$response.body#/items/0/id"
        ),
    },
    ("/sessions", "get", "200"): {
        "DeleteSession": _link(
            "/sessions/{session_id}",
            "delete",
            "the first session",
            session_id="$response.body#/0/id",
        ),
    },
    ("/admin/audit", "get", "200"): {
        # The session and the user of an event may be null (a failed login for an
        # unknown address has neither): only the newest event's, when it has one.
        "DeleteSession": _link(
            "/sessions/{session_id}",
            "delete",
            "the session of the newest event",
            session_id="$response.body#/items/0/session_id",
        ),
        "UpdateUser": _link(
            _USER,
            "patch",
            "the user of the newest event",
            user_id="$response.body#/items/0/user_id",
        ),
        "EndUserSessions": _link(
            _USER_SESSIONS,
            "delete",
            "the user of the newest event",
            user_id="$response.body#/items/0/user_id",
        ),
    },
}


def _add_links(paths: dict[str, dict[str, Any]]) -> None:
    for (path, method, status), links in LINKS.items():
        answer = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
        if answer is not None:
            answer["links"] = links


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
                _body_or_nothing(operation)
        _add_links(paths)
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
