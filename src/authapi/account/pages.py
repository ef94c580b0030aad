"""The pages that mailed links open when AUTHAPI_APP_URL is unset: links then point at
the issuer, and authapi itself shows the form (`GET /email/verify`, `GET
/password/reset`, beside the POSTs that use the token up).

The token is in the link's fragment, which browsers never send: each GET is the same
file for everyone, whatever the URL says, and uses nothing up, so a mail scanner that
opens links spends no token. The page's own script (static/pages.js) reads the token,
takes it out of the address bar and posts it when the owner presses the button.

The pages hold a password form: a strict Content-Security-Policy of their own (no
inline script or style, no eval, nothing from elsewhere, no framing) that
middleware.SecurityHeaders leaves as it is; it adds `Referrer-Policy: no-referrer`.
They are documented in the OpenAPI document as HTML pages (so that an `Allow` header
naming GET beside the POST is true to it); HEAD answers as GET."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from authapi.account import mails

HTML = Path(__file__).parent / "html"
STATIC = Path(__file__).parent / "static"  # the script and the style sheet, nothing else
# Where the pages' script and style sheet are; the pages name them relatively
# (../account/static/), so that they still load behind a proxy that adds a path prefix.
STATIC_PATH = "/account/static"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-store"}
# A token in the query is refused (dependencies.refuse_secrets_in_query), with the JSON
# error body: named by reference, since a model here would be documented as HTML.
QUERY_REFUSED: dict[int | str, dict[str, object]] = {
    400: {
        "description": "invalid_request: a secret in the query string",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
}


def _page(file_name: str) -> Callable[[], Awaitable[HTMLResponse]]:
    html = (HTML / file_name).read_text()  # once: every answer is the same

    async def page() -> HTMLResponse:
        return HTMLResponse(html, headers=HEADERS)

    return page


def install_pages(app: FastAPI) -> None:
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC), name="account-static")
    for path, file_name in (
        (mails.VERIFY_EMAIL_PATH, "verify-email.html"),
        (mails.RESET_PASSWORD_PATH, "reset-password.html"),
    ):
        app.add_api_route(
            path,
            _page(file_name),
            methods=["GET"],
            response_class=HTMLResponse,
            responses=QUERY_REFUSED,
            summary=f"The page a mailed link opens ({file_name.removesuffix('.html')})",
            description=(
                "An HTML page with a form: its script reads the token from the link's "
                "fragment and posts it here when the owner presses the button. The same "
                "page whatever the URL; opening it uses nothing up."
            ),
            tags=["account"],
        )
        # HEAD too: link checkers and mail scanners use it, and a 405 reads as broken.
        # (Not in the document: OpenAPI tools take HEAD as a second operation.)
        app.add_api_route(path, _page(file_name), methods=["HEAD"], include_in_schema=False)
