"""What the routes' `responses=` (error_bodies.responses) cannot say, and the links between
operations.

Two corrections FastAPI has no setting for:

- The token endpoints answer malformed input with 400 (RFC 6749 §5.2), never 422; FastAPI
  documents its own 422 for every route with input unless the route declares a 422,
  which these never answer. It is removed here, with FastAPI's validation-error models.
- An optional JSON body (`/refresh`, `/logout`: the body, or else the cookie) is
  documented as what it is when sent; a JSON `null` is no such body, and is refused.

The links (OpenAPI 3 `links`) are written out, each from a field that always holds a
value: a link inferred from field names would take the `null` of every audit event that
has no session. Routes declare them: `responses={201: {"links": ...}}`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from authapi.error_bodies import TOKEN_ENDPOINTS


def _link(path: str, method: str, description: str, **parameters: str) -> dict[str, Any]:
    escaped = path.replace("~", "~0").replace("/", "~1")
    return {
        "operationRef": f"#/paths/{escaped}/{method}",
        "description": description,
        "parameters": parameters,
    }


def user_links(description: str, pointer: str) -> dict[str, Any]:
    """Links from a user id (at JSON pointer `pointer` of the body) to the admin
    operations on that user."""
    user_id = f"$response.body#{pointer}"
    return {
        "UpdateUser": _link("/admin/users/{user_id}", "patch", description, user_id=user_id),
        "EndUserSessions": _link(
            "/admin/users/{user_id}/sessions", "delete", description, user_id=user_id
        ),
        "MailPasswordReset": _link(
            "/admin/users/{user_id}/password-reset", "post", description, user_id=user_id
        ),
    }


def session_link(description: str, pointer: str) -> dict[str, Any]:
    """A link from a session id to ending that session."""
    return {
        "DeleteSession": _link(
            "/sessions/{session_id}",
            "delete",
            description,
            session_id=f"$response.body#{pointer}",
        )
    }


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


def correct_openapi(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                if path in TOKEN_ENDPOINTS:
                    operation["responses"].pop("422", None)
                _body_or_nothing(operation)
        components = schema.get("components", {}).get("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
