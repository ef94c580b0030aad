"""A small single-page app that uses browser mode, served at /demo/ when
`AUTHAPI_DEMO_SPA=true`: an example to copy, and what the browser tests drive.

With `AUTHAPI_APP_URL` pointing at it (`http://localhost:8000/demo`), mailed links open
it at /demo/email/verify and /demo/password/reset: those paths answer with the app
itself, which reads the token from the link's fragment and shows the form.

Every file of it goes out with a strict Content-Security-Policy (no inline script or
style, nothing from elsewhere, no framing): the page holds a password form and shows
TOTP secrets and recovery codes. Its only exception is `data:` images: the TOTP QR code
(an SVG from the server) and the blank favicon."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

from authapi.account import mails

STATIC = Path(__file__).parent / "static"
MOUNT = "/demo"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY}


class _DemoFiles(StaticFiles):
    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(HEADERS)
        return response


async def _index() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers=HEADERS)


def install_demo(app: FastAPI) -> None:
    # Before the mount, which would answer these paths with a 404 (no such files).
    for path in (mails.VERIFY_EMAIL_PATH, mails.RESET_PASSWORD_PATH):
        app.add_api_route(f"{MOUNT}{path}", _index, methods=["GET"], include_in_schema=False)
    app.mount(MOUNT, _DemoFiles(directory=STATIC, html=True), name="demo")
