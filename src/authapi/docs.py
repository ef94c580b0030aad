"""Interactive docs that work with no internet: Swagger UI's files are served from the
`fastapi-offline` package instead of a CDN.

The page carries its own Content-Security-Policy: everything from this origin, and the
one inline script FastAPI's page starts Swagger UI with allowed by its hash, never
'unsafe-inline'; so an injected script does not run. Images may also be `data:` URIs:
swagger-ui.css draws its icons with them. The page holds a password form, so it may
not be framed (frame-ancestors, and X-Frame-Options from middleware.SecurityHeaders)."""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_PATH = "/docs/static"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def swagger_ui_files() -> Path:
    return Path(str(resources.files("fastapi_offline"))) / "static"


def content_security_policy(html: str) -> str:
    """The policy of a page whose only inline scripts are those in `html`."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src 'self' {hashes}".rstrip(),
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def install_docs(app: FastAPI) -> None:
    app.mount(STATIC_PATH, StaticFiles(directory=swagger_ui_files()), name="docs-static")

    def page() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — docs",
            swagger_js_url=f"{STATIC_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_PATH}/favicon.png",
            # No validator badge: it would be fetched from validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": False},
        )

    # The page is the same for every request: built, and its policy computed, once.
    html = bytes(page().body).decode()
    headers = {"Content-Security-Policy": content_security_policy(html)}

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(html, headers=headers)
