"""Requests that would hash a password (a login, a registration): let in one per turn
of the event loop, and refused before FastAPI parses them while the hasher is full.

`PasswordHasher.slot()` refuses them too, but only after FastAPI has parsed the form,
run the dependency graph and counted the rate limits: during a flood of logins that
work, repeated for each refused one, kept the event loop from every other request
(`/whoami`'s p99 rose to 0.6 s). Here a refusal costs a look at the form's
`grant_type`, and every request this does not concern costs one look at its path.

The logins let in cost the loop ~2 ms each before their hash (routing, the form, the
dependencies, the account's lookup). A flood's first logins find the hasher empty: let
in as they came, four new connections' worth a turn (connection_pacing.py), they made
turns of 8-13 ms while the hasher filled, and every other request waited for them.
One a turn, a turn carries one such login at most, and the others wait in line, in the
order they came, or are refused once their turn finds the hasher full.

Only a full hasher is refused here; `slot()` stays the bound for whatever gets past (a
request let through may still find the hasher full by the time it hashes).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from urllib.parse import unquote_plus

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authapi.error_bodies import RenderedError
from authapi.errors import HashingBusy
from authapi.middleware import MAX_BODY_BYTES
from authapi.turn_pacing import TurnPacer
from authapi.users.passwords import PasswordHasher

# The POST routes that hash (a login, a registration). /token hashes only for the
# password grant: its refresh grant must get through, so its form decides.
TOKEN_PATH = "/token"  # noqa: S105 - a path
HASHING_PATHS = frozenset({TOKEN_PATH, "/users"})
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class _RouteTemplate:
    """In `scope["route"]`, where middleware.route_template reads the path template of
    the route that answered; these routes' templates are their paths."""

    path: str


_ROUTES = {path: _RouteTemplate(path) for path in HASHING_PATHS}
# ~2.5 ms of the loop's time per turn at most: well under a request's usual latency.
REFUSALS_PER_TURN = 8
# ~2 ms each of the loop's time before they hash: one a turn.
ADMISSIONS_PER_TURN = 1
# The same answer as slot()'s refusal, rendered once: a flood is refused hundreds of
# times within a few turns of the event loop.
_BUSY = RenderedError(HashingBusy())


def _hasher(scope: Scope) -> PasswordHasher | None:
    # The context exists once the lifespan ran; before that, nothing hashes here.
    context = getattr(scope["app"].state, "context", None)
    return None if context is None else context.hasher


def _is_form(scope: Scope) -> bool:
    content_type = Headers(scope=scope).get("content-type", "")
    return content_type.split(";", 1)[0].strip().lower() == FORM_CONTENT_TYPE


async def _read_body(receive: Receive, max_body: int) -> tuple[list[Message], bytes | None]:
    """The messages received, to replay them, and the whole body; None when it did not
    arrive whole (the client left, or it outgrew `max_body`: SizeLimits answers that)."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > max_body:
            return messages, None
        if not message.get("more_body", False):
            return messages, b"".join(chunks)


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """`receive` for the app: what was read already, then the rest as it comes."""
    unread = deque(messages)

    async def replay() -> Message:
        if unread:
            return unread.popleft()
        return await receive()

    return replay


# Each grant_type field of a form that starts with "&": a literal the search skips to,
# so a hostile body of tens of thousands of fields costs hardly more than a short one.
_GRANT_TYPES = re.compile(rb"&grant_type=([^&]*)")


def _is_password_grant(body: bytes) -> bool:
    # Percent-escapes decode as UTF-8, the way the form parser decodes them. A grant
    # type that is repeated, or spelled in a way this does not read (an escaped name),
    # goes on to the app: it answers with 400, or slot() with 503, as before.
    found = _GRANT_TYPES.findall(b"&" + body)
    return [unquote_plus(value.decode("latin-1")) for value in found] == ["password"]


class HashingAdmission:
    """For a `POST /users` or a password grant on `POST /token`: in one per turn while
    the hasher has room; else 503 + `Retry-After: 1`, the body `slot()` answers."""

    def __init__(self, app: ASGIApp, *, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body = max_body
        self.admissions = TurnPacer(ADMISSIONS_PER_TURN)
        self.refusals = TurnPacer(REFUSALS_PER_TURN)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in HASHING_PATHS:
            await self.app(scope, receive, send)
            return
        hasher = _hasher(scope)
        if scope["method"] != "POST" or hasher is None:
            await self.app(scope, receive, send)
            return
        if scope["path"] == TOKEN_PATH:
            if not _is_form(scope):
                await self.app(scope, receive, send)  # the app refuses it, or slot() does
                return
            messages, body = await _read_body(receive, self.max_body)
            receive = _replaying(messages, receive)
            if body is None or not _is_password_grant(body):
                await self.app(scope, receive, send)
                return
        # Asked again when its turn comes: the ones let in before may have filled it.
        if await self.admissions.turn(lambda: not hasher.full):
            await self.app(scope, receive, send)
            return
        # What the router would have set: the metrics and the access log then name the
        # route, `/token` or `/users`, not `unmatched`.
        scope["route"] = _ROUTES[scope["path"]]
        await self.refusals.turn()  # a flood's refusals, a few at a time (turn_pacing.py)
        await _BUSY(scope, receive, send)
