from __future__ import annotations

import httpx


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


async def test_docs_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert "swagger" in response.text.lower()
