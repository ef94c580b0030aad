"""A small single-page app that uses browser mode, served at /demo/ when
`AUTHAPI_DEMO_SPA=true`: an example to copy, and what the browser tests drive."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


def install_demo(app: FastAPI) -> None:
    app.mount("/demo", StaticFiles(directory=STATIC, html=True), name="demo")
