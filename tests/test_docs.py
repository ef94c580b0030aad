from __future__ import annotations

import re

import httpx
import pytest

# Swagger UI's option that turns the validator badge (a fetch from validator.swagger.io)
# off: it must be set to null, not merely be mentioned.
VALIDATOR_OFF = re.compile(r"""["']?validatorUrl["']?\s*:\s*null\b""")
# Swagger UI's own scripts: their defaults mention validatorUrl; the page's settings are
# elsewhere (inline, or in a script of ours).
SWAGGER_UI_SCRIPTS = ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js")


async def docs_configuration(client: httpx.AsyncClient, page: str, assets: list[str]) -> str:
    """The text that configures Swagger UI: the page and any script of ours it loads."""
    scripts = [
        (await client.get(asset)).text
        for asset in assets
        if asset.endswith(".js") and not asset.endswith(SWAGGER_UI_SCRIPTS)
    ]
    return "\n".join([page, *scripts])


async def test_openapi_documents_every_contract_endpoint(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path, method in [
        ("/users", "post"),
        ("/token", "post"),
        ("/refresh", "post"),
        ("/logout", "post"),
        ("/revoke", "post"),
        ("/users/me", "get"),
        ("/whoami", "get"),
        ("/sessions", "get"),
        ("/sessions/{session_id}", "delete"),
        ("/sessions", "delete"),
        ("/users/me/password", "post"),
        ("/email/verification", "post"),
        ("/email/verify", "post"),
        ("/password/forgot", "post"),
        ("/password/reset", "post"),
        ("/users/me/email", "post"),
        ("/users/me", "delete"),
        ("/.well-known/jwks.json", "get"),
        ("/.well-known/oauth-authorization-server", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ]:
        assert method in paths[path], (path, method)
    # Token errors are documented, and the password flow drives the Authorize button.
    assert "400" in paths["/token"]["post"]["responses"]
    assert "401" in paths["/whoami"]["get"]["responses"]
    schemes = response.json()["components"]["securitySchemes"]
    assert schemes["OAuth2PasswordBearer"]["flows"]["password"]["tokenUrl"] == "token"


async def test_docs_page_needs_no_internet(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert "swagger" in response.text.lower()
    # Every asset is ours: no CDN, no validator badge.
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", response.text)
    assert assets
    for asset in assets:
        assert asset.startswith("/docs/static/"), asset
        assert (await client.get(asset)).status_code == 200
    assert VALIDATOR_OFF.search(await docs_configuration(client, response.text, assets))
    assert "validator.swagger.io" not in response.text
    assert "cdn" not in response.text.lower()
    assert (await client.get("/redoc")).status_code == 404


async def test_demo_spa_is_off_by_default(client: httpx.AsyncClient) -> None:
    assert (await client.get("/demo/")).status_code == 404


@pytest.mark.parametrize("settings_overrides", [{"demo_spa": True}])
async def test_demo_spa_when_enabled(client: httpx.AsyncClient) -> None:
    page = await client.get("/demo/")
    assert page.status_code == 200
    assert "authapi demo" in page.text
    script = await client.get("/demo/app.js")
    assert script.status_code == 200
    assert "X-Token-Delivery" in script.text


@pytest.mark.parametrize("settings_overrides", [{"demo_spa": True}])
@pytest.mark.parametrize("path", ["/demo/email/verify", "/demo/password/reset"])
async def test_demo_spa_answers_the_mailed_links(client: httpx.AsyncClient, path: str) -> None:
    """AUTHAPI_APP_URL at /demo: the links open the app itself, which loads its script
    from wherever it is opened."""
    index = await client.get("/demo/")
    page = await client.get(path)
    assert page.status_code == 200
    assert page.content == index.content
    assert '<script type="module" src="/demo/app.js">' in page.text


@pytest.mark.parametrize("settings_overrides", [{"demo_spa": True}])
@pytest.mark.parametrize(
    "path", ["/demo/", "/demo/email/verify", "/demo/app.js", "/demo/factors.js", "/demo/demo.css"]
)
async def test_demo_spa_has_a_strict_content_security_policy(
    client: httpx.AsyncClient, path: str
) -> None:
    """Its own files only, no inline script or style, no framing; data: only for images
    (the TOTP QR code)."""
    response = await client.get(path)
    assert response.status_code == 200
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in response.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["img-src"] == "'self' data:"
    assert policy["frame-ancestors"] == "'none'"
    assert (await client.get(f"{path}/elsewhere")).status_code == 404


async def test_demo_spa_links_are_off_by_default(client: httpx.AsyncClient) -> None:
    assert (await client.get("/demo/email/verify")).status_code == 404
