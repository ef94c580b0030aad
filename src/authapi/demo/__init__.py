"""A small single-page app that uses browser mode, served at /demo/ when
`AUTHAPI_DEMO_SPA=true`: an example to copy, and what the browser tests drive.

With `AUTHAPI_APP_URL` pointing at it (`http://localhost:8000/demo`), mailed links open
it at /demo/email/verify and /demo/password/reset: those paths answer with the app
itself, which reads the token from the link's fragment and shows the form."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from authapi.account import mails

STATIC = Path(__file__).parent / "static"
MOUNT = "/demo"


async def _index() -> FileResponse:
    return FileResponse(STATIC / "index.html")


def install_demo(app: FastAPI) -> None:
    # Before the mount, which would answer these paths with a 404 (no such files).
    for path in (mails.VERIFY_EMAIL_PATH, mails.RESET_PASSWORD_PATH):
        app.add_api_route(f"{MOUNT}{path}", _index, methods=["GET"], include_in_schema=False)
    app.mount(MOUNT, StaticFiles(directory=STATIC, html=True), name="demo")
